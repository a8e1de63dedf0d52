"""Listings: refuse symbols no selected exchange lists (today or in the listing history),
before any data request; the listing history of an exchange (every listing ever seen, from
silver instruments and the newest snapshot); resolve a symbol rule (`top:N`, `all:QUOTE`)
from a listing snapshot."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import date

import polars as pl

from models.enums import EXCHANGE_DATASETS, Dataset, Exchange, Layer, MarketKind
from models.errors import InputError
from models.selection import RunRequest
from models.symbols import UniverseRule
from storage import PartitionKey, Warehouse
from storage.snapshots import newest_snapshots
from tasks.transform.instruments import (
    HISTORY_SCHEMA,
    history_from_snapshots,
    merge_history,
    normalize_instruments,
)

# What `check_listed` reads of a snapshot.
LISTING_COLUMNS = ("symbol", "kind")


def newest_silver_instruments(warehouse: Warehouse) -> dict[str, date]:
    """The newest silver instruments partition day of each exchange (one listing)."""
    newest: dict[str, date] = {}
    for key in warehouse.list_keys(Layer.SILVER, Dataset.INSTRUMENTS.value):
        if key.exchange and (key.exchange not in newest or key.day > newest[key.exchange]):
            newest[key.exchange] = key.day
    return newest


def _snapshot_rows(bronze: pl.DataFrame) -> pl.DataFrame:
    """A bronze snapshot as `merge_history` takes it (normalized; rows a snapshot cannot
    name, without symbol or kind, left out)."""
    rows = normalize_instruments(bronze)
    return rows.filter(pl.col("symbol").is_not_null() & pl.col("kind").is_not_null())


def listing_history(
    warehouse: Warehouse,
    exchange: Exchange,
    *,
    newest_bronze: Mapping[str, date] | None = None,
) -> pl.DataFrame:
    """Every listing the exchange was ever seen with (`HISTORY_SCHEMA`): the history silver
    instruments holds (its newest partition), merged with the newest bronze snapshot; without
    a silver history, merged from every stored bronze snapshot (a first run)."""
    bronze_days = newest_snapshots(warehouse) if newest_bronze is None else newest_bronze
    silver_day = newest_silver_instruments(warehouse).get(exchange.value)
    previous = None
    if silver_day is not None:
        stored = warehouse.read(PartitionKey.instruments(exchange, silver_day, Layer.SILVER))
        if stored is not None and "first_seen" in stored.columns:
            previous = stored
    if previous is None:
        snapshots = [
            _snapshot_rows(frame)
            for key in warehouse.list_keys(Layer.BRONZE, Dataset.INSTRUMENTS.value)
            if key.exchange == exchange.value and (frame := warehouse.read(key)) is not None
        ]
        return history_from_snapshots([s for s in snapshots if not s.is_empty()])
    bronze_day = bronze_days.get(exchange.value)
    if bronze_day is None or bronze_day < silver_day:  # type: ignore[operator]
        return previous.select(HISTORY_SCHEMA.names())
    newest = warehouse.read(PartitionKey.instruments(exchange, bronze_day))
    if newest is None or newest.is_empty():
        return previous.select(HISTORY_SCHEMA.names())
    return merge_history(previous, _snapshot_rows(newest))


_HISTORY_CACHE: dict[tuple[str, str, tuple[tuple[str, date], ...]], pl.DataFrame] = {}
_HISTORY_LOCK = threading.Lock()


def cached_history(warehouse: Warehouse, exchange: Exchange) -> pl.DataFrame:
    """`listing_history`, read once per process for the same stored partitions (units of a
    run ask for it when a symbol is not in today's listing)."""
    stamp = tuple(sorted({**newest_snapshots(warehouse)}.items())) + tuple(
        sorted((f"silver:{k}", v) for k, v in newest_silver_instruments(warehouse).items())
    )
    key = (warehouse.uri, exchange.value, stamp)
    with _HISTORY_LOCK:
        found = _HISTORY_CACHE.get(key)
    if found is None:
        found = listing_history(warehouse, exchange)
        with _HISTORY_LOCK:
            _HISTORY_CACHE[key] = found
    return found


def known_in_history(
    history: pl.DataFrame, symbol: str, kind: MarketKind, *, dropped: bool = False
) -> bool:
    """Whether the history holds a listing of `symbol` of that kind (trading or not; with
    `dropped`, only one no longer in the exchange's newest snapshot)."""
    if history.is_empty():
        return False
    found = (pl.col("symbol") == symbol) & (pl.col("kind") == kind.value)
    if dropped and "listed" in history.columns:
        found = found & ~pl.col("listed").fill_null(False)
    return not history.filter(found).is_empty()


def check_listed(
    request: RunRequest,
    listings: dict[Exchange, pl.DataFrame],
    histories: Mapping[Exchange, pl.DataFrame] | None = None,
) -> list[str]:
    """Raise `InputError` for a symbol none of the exchanges lists, today or in its listing
    history (`histories`: a delisted symbol may be backfilled); return notices for the rest."""
    histories = histories or {}
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
        listed_on += [
            exchange.value
            for exchange, history in histories.items()
            if exchange.value not in listed_on and known_in_history(history, symbol, kind)
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


# Where an exchange's listing object states when the listing opened (epoch ms).
_LISTED_FIELDS = ("listTime", "onboardDate")
_TIMES_CACHE: dict[tuple[str, str, date | None], dict[tuple[str, str], int]] = {}


def listing_times(warehouse: Warehouse, exchange: Exchange) -> dict[tuple[str, str], int]:
    """(kind, symbol) -> the moment the exchange says the listing opened, in epoch ms, where
    its newest snapshot states it (OKX `listTime`, Binance USD-M `onboardDate`); read once
    per process and snapshot."""
    day = newest_snapshots(warehouse).get(exchange.value)
    key = (warehouse.uri, exchange.value, day)
    with _HISTORY_LOCK:
        found = _TIMES_CACHE.get(key)
    if found is not None:
        return found
    out: dict[tuple[str, str], int] = {}
    if day is not None:
        frame = warehouse.read(PartitionKey.instruments(exchange, day))
        if frame is not None and "raw" in frame.columns and not frame.is_empty():
            stated = pl.coalesce(
                pl.col("raw").str.json_path_match(f"$.{name}") for name in _LISTED_FIELDS
            )
            rows = frame.select(
                pl.col("kind").str.to_lowercase().replace({"swap": "perp", "perpetual": "perp"}),
                pl.col("symbol").str.to_uppercase(),
                stated.cast(pl.Int64, strict=False).alias("listed_ms"),
            ).drop_nulls()
            out = {(k, s): int(ms) for k, s, ms in rows.iter_rows() if ms > 0}
    with _HISTORY_LOCK:
        _TIMES_CACHE[key] = out
    return out
