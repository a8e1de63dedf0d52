"""Listings: refuse symbols no selected exchange lists, before any data request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime

import polars as pl

from models.enums import EXCHANGE_DATASETS, Dataset, Exchange, Layer, MarketKind
from models.errors import InputError
from models.requests import RunRequest
from storage import Warehouse
from tasks.bronze import instruments_key

# What `check_listed` reads of a snapshot.
LISTING_COLUMNS = ("symbol", "kind")


def newest_snapshots(warehouse: Warehouse) -> dict[str, date]:
    """The newest stored bronze instruments snapshot day of each exchange (one listing)."""
    newest: dict[str, date] = {}
    for key in warehouse.list_keys(Layer.BRONZE, Dataset.INSTRUMENTS.value):
        if key.exchange and (key.exchange not in newest or key.day > newest[key.exchange]):
            newest[key.exchange] = key.day
    return newest


def latest_instruments(
    warehouse: Warehouse,
    exchange: Exchange,
    *,
    newest: Mapping[str, date] | None = None,
    columns: Sequence[str] | None = None,
) -> pl.DataFrame | None:
    """The newest stored bronze instruments snapshot of an exchange (only `columns` if
    given), if any. `newest` is a `newest_snapshots` listing to reuse."""
    days = newest_snapshots(warehouse) if newest is None else newest
    day = days.get(exchange.value)
    if day is None:
        return None
    return warehouse.read(instruments_key(exchange, day), columns=columns)


def has_fresh_snapshot(
    warehouse: Warehouse, exchange: Exchange, *, newest: Mapping[str, date] | None = None
) -> bool:
    """Whether the exchange's listings were snapshotted today (UTC)."""
    days = newest_snapshots(warehouse) if newest is None else newest
    day = days.get(exchange.value)
    return day is not None and day >= datetime.now(UTC).date()


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
