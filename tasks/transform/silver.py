"""One entry point per silver partition: normalize, dedup, validate, coverage, counts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import polars as pl

from models.enums import OPEN_INTEREST_PERIOD, Exchange, Interval
from models.silver import SILVER_KEYS, SILVER_SCHEMAS
from tasks.transform.common import dedup_latest
from tasks.transform.coverage import build_coverage
from tasks.transform.funding import normalize_funding
from tasks.transform.instruments import normalize_instruments
from tasks.transform.ohlcv import normalize_ohlcv, resample_ohlcv
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


def _source_interval(bronze: pl.DataFrame, interval: Interval) -> Interval:
    """The interval the bronze rows carry (Coinbase 4h arrives as 1h candles)."""
    found = bronze.get_column("interval").drop_nulls().unique().to_list() if len(bronze) else []
    if not found:
        return interval
    if len(found) > 1:
        raise ValueError(f"bronze ohlcv mixes intervals {sorted(found)}")
    return Interval(found[0])


def _check_exchange(bronze: pl.DataFrame, exchange: str) -> None:
    others = set(bronze.get_column("exchange").unique().to_list()) - {exchange}
    if others:
        raise ValueError(f"bronze for {exchange} holds rows of {sorted(map(str, others))}")


def _normalizer(
    dataset: str, previous: pl.DataFrame | None
) -> Callable[[pl.DataFrame], pl.DataFrame]:
    if dataset == "ohlcv":
        return normalize_ohlcv
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


def _missing_points(coverage: pl.DataFrame, grid: Interval | None) -> int:
    """Grid points covered by the coverage rows' gaps."""
    spans = coverage.select(pl.col("gaps").explode()).drop_nulls()
    if grid is None or spans.is_empty():
        return 0
    gap = pl.col("gaps").struct
    total = spans.select((gap.field("end") - gap.field("start")).dt.total_milliseconds().sum())
    return int(total.item()) // grid.ms


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
    if dataset == "ohlcv" and interval is None:
        raise ValueError("ohlcv needs an interval")
    normalize = _normalizer(dataset, previous)
    _check_exchange(bronze, exchange)

    normalized = normalize(bronze)
    deduped = dedup_latest(normalized, SILVER_KEYS[dataset])
    source = _source_interval(bronze, interval) if dataset == "ohlcv" and interval else interval
    good, quarantine = validate(deduped, dataset, interval=source, day=day)
    counts = {
        "input": len(bronze),
        "unclosed": len(bronze) - len(normalized),
        "deduplicated": len(normalized) - len(deduped),
        "quarantined": len(quarantine),
    }
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
    counts["gaps"] = int(coverage.get_column("gaps").list.len().sum())
    grid = {"ohlcv": interval, "open_interest": OPEN_INTEREST_PERIOD}.get(dataset)
    counts["missing"] = _missing_points(coverage, grid)
    data = good.sort("symbol", "ts") if "ts" in good.columns else good.sort("symbol", "kind")
    return SilverBatch(
        data=data.select(SILVER_SCHEMAS[dataset].names()),
        quarantine=quarantine,
        coverage=coverage,
        counts=counts,
    )
