"""One entry point per silver partition: normalize, dedup, validate, coverage, counts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import polars as pl

from models.enums import OPEN_INTEREST_PERIOD, Exchange, Interval
from models.silver import SILVER_KEYS
from tasks.transform.common import dedup_latest_keyed
from tasks.transform.coverage import build_coverage
from tasks.transform.funding import normalize_funding
from tasks.transform.instruments import normalize_instruments
from tasks.transform.ohlcv import normalize_ohlcv, plain_provenance, resample_ohlcv
from tasks.transform.open_interest import normalize_open_interest
from tasks.transform.validate import validate

SILVER_DATASETS = ("ohlcv", "funding", "open_interest", "instruments")


@dataclass(frozen=True)
class SilverBatch:
    """A silver partition ready to write.

    `counts`: input (bronze rows), unclosed (forming candles dropped), deduplicated (older or
    repeated copies dropped), quarantined, good (rows in `data`), gaps (merged missing ranges),
    missing (missing grid points). Without resampling input = unclosed + deduplicated +
    quarantined + good; when finer candles are resampled, `source_good` replaces `good` in
    that sum and `good` counts the resampled candles.
    """

    data: pl.DataFrame
    quarantine: pl.DataFrame
    coverage: pl.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    gap_minutes: float = 0.0  # the minutes the `gaps` of `coverage` span


def _bronze_values(
    bronze: pl.DataFrame, *, symbols: bool = False
) -> tuple[list[str], list[str], list[str] | None]:
    """The distinct exchanges, non-null intervals and (if asked) symbols of the bronze rows,
    in one pass."""
    values = [
        pl.col("exchange").unique().implode(),
        pl.col("interval").drop_nulls().unique().implode(),
    ]
    if symbols:
        values.append(pl.col("symbol").unique().implode())
    row = bronze.select(values).row(0)
    return row[0], row[1], row[2] if symbols else None


def _source_interval(intervals: list[str], interval: Interval) -> Interval:
    """The interval the bronze rows carry (Coinbase 4h arrives as 1h candles)."""
    if not intervals:
        return interval
    if len(intervals) > 1:
        raise ValueError(f"bronze ohlcv mixes intervals {sorted(intervals)}")
    return Interval(intervals[0])


def _check_exchange(exchanges: list[str], exchange: str) -> None:
    others = set(exchanges) - {exchange}
    if others:
        raise ValueError(f"bronze for {exchange} holds rows of {sorted(map(str, others))}")


def _normalizer(
    dataset: str, previous: pl.DataFrame | None, exchange: str, plain: bool = False
) -> Callable[[pl.DataFrame], pl.DataFrame]:
    """The normalizer of `dataset`, for bronze rows already checked to be of `exchange`
    (`plain`: candles whose symbols and intervals need no rewriting, `plain_provenance`)."""
    if dataset == "ohlcv":
        return lambda bronze: normalize_ohlcv(bronze, exchange=exchange, plain=plain)
    if dataset == "funding":
        return lambda bronze: normalize_funding(bronze, previous)
    if dataset == "open_interest":
        return normalize_open_interest
    if dataset == "instruments":
        return normalize_instruments
    raise ValueError(f"unknown silver dataset {dataset!r} (one of {', '.join(SILVER_DATASETS)})")


def _coverage(
    dataset: str,
    good: pl.DataFrame,
    quarantine: pl.DataFrame,
    *,
    exchange: str,
    interval: Interval | None,
    day: date,
    symbols: Sequence[str],
    closed: bool,
    complete: bool,
    now: datetime | None,
    listed_since: dict[str, datetime] | None,
) -> pl.DataFrame:
    """Coverage against the dataset's grid: the candle interval, the hourly open-interest
    period, or none (funding, instruments)."""
    grid = {"ohlcv": interval, "open_interest": OPEN_INTEREST_PERIOD}.get(dataset)
    return build_coverage(
        dataset,
        good,
        exchange=exchange,
        grid=grid,
        day=day,
        symbols=symbols,
        quarantined=quarantine,
        closed=closed,
        complete=complete,
        now=now,
        listed_since=listed_since,
    )


def _gap_counts(coverage: pl.DataFrame, grid: Interval | None) -> tuple[int, int, float]:
    """(merged gaps, grid points they cover, minutes they span) over the coverage rows, in
    one pass."""
    gap = pl.col("gaps").explode().struct
    span = (gap.field("end") - gap.field("start")).dt.total_milliseconds()
    seconds = (gap.field("end") - gap.field("start")).dt.total_seconds()
    gaps, span_ms, spans = coverage.select(
        pl.col("gaps").list.len().sum().alias("gaps"),
        span.sum().alias("span"),
        seconds.sum().alias("seconds"),
    ).row(0)
    missing = int(span_ms or 0) // grid.ms if grid else 0
    return int(gaps), missing, float(spans or 0) / 60.0


@dataclass(frozen=True)
class Validated:
    """Bronze rows normalized, deduplicated and validated at the candles' own interval."""

    good: pl.DataFrame
    quarantine: pl.DataFrame
    source: Interval | None  # the interval of the bronze candles (Coinbase 4h: 1h)
    counts: dict[str, int]


def validated(
    dataset: str,
    bronze: pl.DataFrame,
    *,
    exchange: str,
    interval: Interval | None,
    day: date,
    previous: pl.DataFrame | None = None,
) -> Validated:
    """The good and quarantined rows of one exchange's bronze rows of one day, before any
    resampling (the first half of `build_silver`; bronze uses it to judge what it stores)."""
    exchange = Exchange(exchange).value
    if dataset == "ohlcv" and interval is None:
        raise ValueError("ohlcv needs an interval")
    ohlcv = dataset == "ohlcv"
    exchanges, intervals, symbols = _bronze_values(bronze, symbols=ohlcv)
    _check_exchange(exchanges, exchange)
    plain = ohlcv and symbols is not None and plain_provenance(symbols, intervals)
    normalize = _normalizer(dataset, previous, exchange, plain=plain)

    normalized = normalize(bronze)
    deduped, unique = dedup_latest_keyed(normalized, SILVER_KEYS[dataset])
    source = _source_interval(intervals, interval) if dataset == "ohlcv" and interval else interval
    good, quarantine = validate(
        deduped, dataset, interval=source, day=day, sorted_by_key=True, unique_keys=unique
    )
    counts = {
        "input": len(bronze),
        "unclosed": len(bronze) - len(normalized),
        "deduplicated": len(normalized) - len(deduped),
        "quarantined": len(quarantine),
    }
    return Validated(good, quarantine, source, counts)


def build_silver(
    dataset: str,
    bronze: pl.DataFrame,
    *,
    exchange: str,
    interval: Interval | None,
    day: date,
    symbols: Sequence[str],
    closed: bool,
    complete: bool,
    previous: pl.DataFrame | None = None,
    now: datetime | None = None,
    listed_since: dict[str, datetime] | None = None,
) -> SilverBatch:
    """Bronze rows of one (dataset, exchange[, interval], day) → a `SilverBatch`.

    `previous`: earlier silver funding rows, for the first event's interval. `now`: the time
    of the fetch, for an open day's expected candles and `updated_at`. For ohlcv, bronze
    candles finer than `interval` (Coinbase's 1h for 4h) are validated at their own interval
    and resampled; quarantined source candles then carry their own interval.
    """
    exchange = Exchange(exchange).value
    checked = validated(
        dataset, bronze, exchange=exchange, interval=interval, day=day, previous=previous
    )
    good, quarantine, source, counts = (
        checked.good,
        checked.quarantine,
        checked.source,
        dict(checked.counts),
    )
    if dataset == "ohlcv" and interval and source != interval:
        counts["source_good"] = len(good)
        good, extra = validate(resample_ohlcv(good, interval), dataset, interval=interval, day=day)
        quarantine = pl.concat([quarantine, extra])
        counts["quarantined"] = len(quarantine)

    coverage = _coverage(
        dataset,
        good,
        quarantine,
        exchange=exchange,
        interval=interval,
        day=day,
        symbols=symbols,
        closed=closed,
        complete=complete,
        now=now,
        listed_since=listed_since,
    )
    counts["good"] = len(good)
    grid = {"ohlcv": interval, "open_interest": OPEN_INTEREST_PERIOD}.get(dataset)
    counts["gaps"], counts["missing"], gap_minutes = _gap_counts(coverage, grid)
    # `good` is in the silver schema and in key order (`dedup_latest`, `resample_ohlcv`): with
    # one exchange (checked) and one interval (validated), sorted by (symbol, ts) or, for
    # instruments, (symbol, kind).
    return SilverBatch(
        data=good,
        quarantine=quarantine,
        coverage=coverage,
        counts=counts,
        gap_minutes=gap_minutes,
    )
