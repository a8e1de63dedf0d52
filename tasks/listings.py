"""Listings: refuse symbols no selected exchange lists, before any data request; resolve a
symbol rule (`top:N`, `all:QUOTE`) from a listing snapshot."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from models.enums import EXCHANGE_DATASETS, Dataset, Exchange, MarketKind
from models.errors import InputError
from models.selection import RunRequest
from models.symbols import UniverseRule

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


# What a listing's status is when the exchange trades it (Binance, OKX, Coinbase words).
TRADING_STATUSES = frozenset({"TRADING", "live", "online"})


def trading(snapshot: pl.DataFrame) -> pl.Expr:
    """Rows of a listing snapshot the exchange trades now: a trading status and, for Coinbase
    (whose `raw` product carries them), not trading-disabled, cancel-only nor auction-mode."""
    ok = pl.col("status").is_in(list(TRADING_STATUSES))
    if "raw" in snapshot.columns:
        for flag in ("trading_disabled", "cancel_only", "auction_mode"):
            value = pl.col("raw").str.json_path_match(f"$.{flag}")
            ok = ok & (value.is_null() | (value != "true"))
    return ok


def resolve_rule(
    rule: UniverseRule,
    snapshot: pl.DataFrame,
    volumes: Mapping[str, float] | None = None,
    *,
    kind: MarketKind = MarketKind.SPOT,
) -> list[str]:
    """The symbols a rule names on one exchange (pure: a listing snapshot and the 24 h quote
    volumes per symbol in, symbols out).

    `all:QUOTE`: every trading pair quoted in QUOTE, sorted by name. `top:N[:QUOTE]`: of those,
    the N with the largest volume (ties by name); a pair without a volume counts as 0, and
    `top` needs `volumes` (the exchange's ticker endpoint, `BaseClient.quote_volumes`).
    """
    rows = snapshot.filter(
        (pl.col("kind") == kind.value) & (pl.col("quote") == rule.quote) & trading(snapshot)
    )
    symbols = sorted(set(rows.get_column("symbol").to_list()))
    if rule.rule == "all":
        return symbols
    if volumes is None:
        raise InputError(f"symbol rule {rule} needs the exchange's 24h volumes")
    ranked = sorted(symbols, key=lambda s: (-float(volumes.get(s, 0.0)), s))
    return ranked[: rule.count]


def resolve_rules(
    rule: UniverseRule,
    snapshots: Mapping[Exchange, pl.DataFrame],
    volumes: Mapping[Exchange, Mapping[str, float]] | None = None,
    *,
    kind: MarketKind = MarketKind.SPOT,
) -> list[str]:
    """The rule over several exchanges: each exchange's own symbols (its top N by its own
    volume), merged in rank order without repeats."""
    per_exchange = [
        resolve_rule(rule, frame, (volumes or {}).get(exchange), kind=kind)
        for exchange, frame in snapshots.items()
    ]
    out: list[str] = []
    for rank in range(max((len(x) for x in per_exchange), default=0)):
        for found in per_exchange:
            if rank < len(found) and found[rank] not in out:
                out.append(found[rank])
    return out
