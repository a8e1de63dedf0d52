"""OHLCV: bronze candles of any exchange → silver rows; dedup; resampling of finer candles."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import polars as pl

from models.enums import Exchange, Interval
from models.silver import SILVER_SCHEMAS
from tasks.transform.common import (
    FETCHED_AT,
    UTC_MS,
    collect,
    conform,
    epoch_ms,
    to_float,
    working_schema,
)

OHLCV_SCHEMA = SILVER_SCHEMAS["ohlcv"]

# Exchange-native bar names that may reach bronze, mapped to the unified interval.
_NATIVE_INTERVALS = {"1H": "1h", "4H": "4h", "1D": "1d", "1Dutc": "1d", "1Hutc": "1h"}
# Epoch values at or above this are microseconds (1e14 ms would be the year 5138).
_MICROSECONDS_FROM = 10**14


class _Candles(NamedTuple):
    """How one exchange's bronze candles become working rows: the closed ones, reshaped."""

    closed: pl.Expr
    columns: tuple[pl.Expr, ...]


def _provenance(exchange: Exchange) -> list[pl.Expr]:
    """Provenance of rows of one exchange: its (lower-case) name is the frame's constant."""
    return [
        pl.lit(exchange.value).alias("exchange"),
        pl.col("symbol").str.to_uppercase(),
        pl.col("interval").replace(_NATIVE_INTERVALS),
    ]


def plain_provenance(symbols: Iterable[str | None], intervals: Iterable[str | None]) -> bool:
    """Whether bronze rows holding these distinct symbols and intervals already spell them
    as silver does (upper-case ASCII symbols, unified interval names): then `normalize_ohlcv`
    may pass them through (`plain=True`) instead of rewriting every row to the same values."""
    return all(s is None or (s.isascii() and s == s.upper()) for s in symbols) and not any(
        i in _NATIVE_INTERVALS for i in intervals
    )


def _binance_ms(column: str) -> pl.Expr:
    """Binance epoch time in ms; microsecond values (binance.vision spot dumps since 2025,
    or `X-MBX-TIME-UNIT: MICROSECOND`) are scaled down."""
    value = pl.col(column).cast(pl.Int64, strict=False)
    return pl.when(value >= _MICROSECONDS_FROM).then(value // 1000).otherwise(value)


def _binance() -> _Candles:
    """Spot klines; a candle whose close_time is not before fetched_at was still forming."""
    closed = _binance_ms("close_time") < pl.col(FETCHED_AT).dt.epoch("ms")
    return _Candles(
        closed.fill_null(True),
        (
            *_provenance(Exchange.BINANCE),
            epoch_ms(_binance_ms("open_time")).alias("ts"),
            *(to_float(c) for c in ("open", "high", "low", "close", "volume", "quote_volume")),
            pl.col("trades").cast(pl.Int64, strict=False),
            pl.col(FETCHED_AT),
        ),
    )


def _okx() -> _Candles:
    """history-candles; `confirm == "0"` marks the in-progress candle. Spot `vol` is base units."""
    return _Candles(
        pl.col("confirm").ne_missing("0"),
        (
            *_provenance(Exchange.OKX),
            epoch_ms("ts").alias("ts"),
            to_float("o").alias("open"),
            to_float("h").alias("high"),
            to_float("l").alias("low"),
            to_float("c").alias("close"),
            to_float("vol").alias("volume"),
            to_float("volCcyQuote").alias("quote_volume"),
            pl.lit(None, pl.Int64).alias("trades"),
            pl.col(FETCHED_AT),
        ),
    )


def _coinbase() -> _Candles:
    """Exchange candles: `time` in seconds, no closed flag, no quote volume, no trade count.

    A candle is closed once its end (open + interval) is not after `fetched_at`.
    """
    ts = pl.col("time").cast(pl.Int64, strict=False) * 1000
    length = pl.col("interval").replace_strict(
        {i.value: i.ms for i in Interval}, default=None, return_dtype=pl.Int64
    )
    forming = (ts + length) > pl.col(FETCHED_AT).dt.epoch("ms")
    return _Candles(
        ~forming.fill_null(False),
        (
            *_provenance(Exchange.COINBASE),
            epoch_ms(ts).alias("ts"),
            *(to_float(c) for c in ("open", "high", "low", "close", "volume")),
            pl.lit(None, pl.Float64).alias("quote_volume"),
            pl.lit(None, pl.Int64).alias("trades"),
            pl.col(FETCHED_AT),
        ),
    )


# Built once: expressions are immutable and rebuilding them costs more than small frames.
_CANDLES = {Exchange.BINANCE: _binance(), Exchange.OKX: _okx(), Exchange.COINBASE: _coinbase()}


def _passed_through(candles: _Candles) -> _Candles:
    """`candles` with symbol and interval taken as they are (`plain_provenance`)."""
    rewritten = {"symbol", "interval"}
    columns = tuple(
        pl.col(name) if name in rewritten else expr
        for expr, name in ((e, e.meta.output_name()) for e in candles.columns)
    )
    return _Candles(candles.closed, columns)


_PLAIN_CANDLES = {exchange: _passed_through(c) for exchange, c in _CANDLES.items()}


def _read_columns(candles: _Candles) -> tuple[str, ...]:
    """The bronze columns `candles` reads, with those `normalize_ohlcv` and `validated` read
    of every bronze row (exchange, symbol, interval, fetched_at)."""
    roots = {"exchange", "symbol", "interval", FETCHED_AT}
    for expr in (candles.closed, *candles.columns):
        roots.update(expr.meta.root_names())
    return tuple(sorted(roots))


# Per exchange, the bronze columns silver needs (raw fields such as Binance's taker volumes
# or OKX's volCcy are kept in bronze, never read into silver).
BRONZE_COLUMNS: dict[Exchange, tuple[str, ...]] = {
    exchange: _read_columns(candles) for exchange, candles in _CANDLES.items()
}


def _normalize(bronze: pl.DataFrame, name: object, plain: bool = False) -> pl.DataFrame:
    """Bronze candles of the one exchange `name` (as bronze spells it) → working rows."""
    try:
        candles = (_PLAIN_CANDLES if plain else _CANDLES)[Exchange(str(name).lower())]
    except ValueError:
        raise ValueError(f"unknown exchange {name!r} in bronze ohlcv") from None
    rows = collect(bronze.lazy().filter(candles.closed).select(candles.columns))
    return conform(rows, working_schema("ohlcv"))


def normalize_ohlcv(
    bronze: pl.DataFrame, *, exchange: str | None = None, plain: bool = False
) -> pl.DataFrame:
    """Bronze candles → silver OHLCV columns plus `fetched_at`, closed candles only.

    Dispatches on the `exchange` column (a frame may hold several exchanges only if it carries
    each one's raw columns), or on `exchange` when every row is known to be of that one.
    Numbers that do not parse become null and are quarantined later; nothing is invented:
    Coinbase has null `quote_volume` and `trades`, OKX null `trades`. `plain`: the symbols
    and intervals are known to be spelled as silver spells them (`plain_provenance`).
    """
    if bronze.is_empty():
        return pl.DataFrame(schema=working_schema("ohlcv"))
    names = [exchange] if exchange else bronze.get_column("exchange").unique().to_list()
    if len(names) == 1:
        return _normalize(bronze, names[0], plain)
    parts = bronze.partition_by("exchange", as_dict=True)
    return pl.concat([_normalize(rows, name) for (name,), rows in parts.items()])


def resample_ohlcv(df: pl.DataFrame, target: Interval = Interval.H4) -> pl.DataFrame:
    """Silver candles of one finer interval → `target` candles, complete buckets only.

    A bucket (epoch-aligned, so UTC-day aligned for divisors of a day) is built only when all
    of its source candles exist: first open, max high, min low, last close, summed volume.
    `quote_volume` and `trades` are summed only when every source value is present, otherwise
    null (a partial sum would understate). A `fetched_at` column, if present, keeps its max.
    """
    out_schema = pl.Schema(
        {**OHLCV_SCHEMA, **({FETCHED_AT: UTC_MS} if FETCHED_AT in df.columns else {})}
    )
    if df.is_empty():
        return pl.DataFrame(schema=out_schema)
    sources = df.get_column("interval").unique().to_list()
    if len(sources) != 1:
        raise ValueError(f"resample needs one source interval, got {sorted(map(str, sources))}")
    source = Interval(sources[0])
    if target.ms <= source.ms or target.ms % source.ms:
        raise ValueError(f"cannot resample {source} candles to {target}")
    per_bucket = target.ms // source.ms
    bucket = pl.col("ts").dt.epoch("ms") // target.ms * target.ms
    keys = ["exchange", "symbol", "bucket"]

    def strict_sum(name: str) -> pl.Expr:
        col = pl.col(name)
        return pl.when(col.null_count() == 0).then(col.sum()).otherwise(None).alias(name)

    aggregated = (
        df.sort("ts")
        .with_columns(bucket.alias("bucket"))
        .group_by(keys)
        .agg(
            pl.col("ts").n_unique().alias("_n"),
            pl.len().alias("_rows"),
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
            strict_sum("quote_volume"),
            strict_sum("trades"),
            *([pl.col(FETCHED_AT).max()] if FETCHED_AT in df.columns else []),
        )
        .filter((pl.col("_n") == per_bucket) & (pl.col("_rows") == per_bucket))
        .with_columns(
            pl.lit(target.value).alias("interval"),
            pl.col("bucket").cast(UTC_MS).alias("ts"),
        )
    )
    return conform(aggregated, out_schema).sort("exchange", "symbol", "ts")
