"""Listings: refuse symbols no selected exchange lists, before any data request."""

from __future__ import annotations

import polars as pl

from models.enums import EXCHANGE_DATASETS, Dataset, Exchange, MarketKind
from models.errors import InputError
from models.selection import RunRequest

# What `check_listed` reads of a snapshot.
LISTING_COLUMNS = ("symbol", "kind")


def check_listed(request: RunRequest, listings: dict[Exchange, pl.DataFrame]) -> list[str]:
    """Raise `InputError` for a symbol none of the exchanges lists; return notices for the rest."""
    notices: list[str] = []
    wanted = [(s, MarketKind.SPOT) for s in request.symbols if Dataset.OHLCV in request.datasets]
    if Dataset.FUNDING in request.datasets or Dataset.OPEN_INTEREST in request.datasets:
        wanted += [(s, MarketKind.PERP) for s in request.perp_symbols]
    for symbol, kind in wanted:
        listed_on = [
            exchange.value
            for exchange, frame in listings.items()
            if not frame.filter(
                (pl.col("symbol") == symbol) & (pl.col("kind") == kind.value)
            ).is_empty()
        ]
        relevant = [
            e
            for e in request.exchanges
            if kind is MarketKind.SPOT or Dataset.FUNDING in EXCHANGE_DATASETS[e]
        ]
        if not relevant:
            continue
        if not listed_on:
            names = ", ".join(e.value for e in relevant)
            raise InputError(f"symbol {symbol} ({kind.value}) is not listed on any of: {names}")
        missing = [e.value for e in relevant if e.value not in listed_on]
        if missing:
            notices.append(
                f"{symbol} ({kind.value}) not listed on {', '.join(missing)}: skipped there"
            )
    return notices
