"""Discarding stored data on purpose: the one way to make a closed day worse.

Runs never degrade a stored closed day (not even forced ones). To drop data that is wrong, or
to make room for a source's new version of history, `discard` removes a series' partition
files over a range of days in every layer (bronze, silver, quarantine) and marks their
coverage records discarded (not complete, no rows), so the next run fetches and builds those
days again, as if never fetched; the cross-exchange aggregate of an ohlcv day is rebuilt by
that run from every exchange's silver. Every removed file is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import polars as pl

from models.coverage import COVERAGE_SCHEMA
from models.enums import Exchange, Interval, Layer
from models.partitions import PartitionSpec
from storage.layout import shape_of
from storage.warehouse import Warehouse

log = logging.getLogger("crypto_pipeline.discard")

DISCARDED = "discarded on purpose"
LAYERS = (Layer.BRONZE, Layer.SILVER, Layer.QUARANTINE)


@dataclass
class DiscardReport:
    """What `discard` removed: the files (full URIs) and the coverage records reset."""

    files: list[str] = field(default_factory=list)
    records: int = 0

    def __str__(self) -> str:
        return f"discarded {len(self.files)} files and {self.records} coverage records"


def discard(
    warehouse: Warehouse,
    *,
    dataset: str,
    exchange: str,
    start: date,
    end: date,
    interval: str | None = None,
    reason: str = "",
) -> DiscardReport:
    """Remove the files of one exchange's `dataset` on the days [start, end] (of `interval`
    only, or every interval when None) in bronze, silver and quarantine, and reset their
    coverage, so that the next run fetches and builds them again. `reason` is logged."""
    if end < start:
        raise ValueError(f"reversed date range: start {start} is after end {end}")
    shape = shape_of(dataset)
    if not shape.exchange:
        raise ValueError(f"dataset {dataset!r} has no exchange level: it is built, not fetched")
    if interval is not None and not shape.interval:
        raise ValueError(f"dataset {dataset!r} has no interval level (got {interval!r})")
    exchange = Exchange(exchange).value  # ValueError names an unknown one
    interval = Interval(interval).value if interval is not None else None
    report = DiscardReport()
    why = f" ({reason})" if reason else ""
    for layer in LAYERS:
        for key in warehouse.list_keys(layer, dataset):
            if key.exchange != exchange or not start <= key.day <= end:
                continue
            if interval is not None and key.interval != interval:
                continue
            uri = warehouse.path(key)
            warehouse.store.delete(key.path)
            report.files.append(uri)
            log.warning("discarded %s%s", uri, why)
    report.records = _reset_coverage(
        warehouse, dataset=dataset, exchange=exchange, start=start, end=end, interval=interval
    )
    log.warning(
        "discard %s/%s%s %s..%s: %s%s",
        exchange,
        dataset,
        f"/{interval}" if interval else "",
        start,
        end,
        report,
        why,
    )
    return report


def _reset_coverage(
    warehouse: Warehouse,
    *,
    dataset: str,
    exchange: str,
    start: date,
    end: date,
    interval: str | None,
) -> int:
    """Mark the series' records of [start, end] discarded (newer records win, see
    `CoverageIndex`): not complete, no rows, no file; returns how many."""
    records = warehouse.coverage.query(
        dataset=dataset, exchange=exchange, interval=interval, start=start, end=end
    )
    records = records.filter(pl.col("layer").is_in([layer.value for layer in LAYERS]))
    if records.is_empty():
        return 0
    reset = records.with_columns(
        pl.lit(0, pl.Int64).alias("rows_present"),
        pl.lit([], COVERAGE_SCHEMA["gaps"]).alias("gaps"),
        pl.lit(0, pl.Int64).alias("quarantined"),
        pl.lit(False).alias("complete"),
        pl.lit(datetime.now(UTC)).cast(COVERAGE_SCHEMA["updated_at"]).alias("updated_at"),
        pl.lit(None, pl.String).alias("file_stamp"),
        pl.lit(DISCARDED, pl.String).alias("gap_reason"),
    )
    warehouse.coverage.upsert(reset)
    return reset.height


def mark_stale(
    warehouse: Warehouse,
    layer: Layer,
    stale: dict[PartitionSpec, str],
    symbols: Mapping[PartitionSpec, Collection[str]] | None = None,
) -> int:
    """Mark the `layer` coverage records of the partitions in `stale` not complete (rows and
    files kept), so the next run of that layer builds them again: e.g. silver days whose bronze
    a source replaced. Each partition's reason goes to `gap_reason` and the log; one upsert.
    `symbols`: only these symbols' records of a partition (e.g. the bronze rows of one replaced
    archive file: fetched again, the other symbols' rows kept). Returns how many records were
    marked."""
    marked: list[pl.DataFrame] = []
    for spec, reason in stale.items():
        records = warehouse.coverage.query(
            layer=layer,
            dataset=spec.dataset.value,
            exchange=spec.exchange.value,
            interval=spec.interval.value if spec.interval is not None else None,
            start=spec.day,
            end=spec.day,
        ).filter(pl.col("complete"))
        if symbols is not None and spec in symbols:
            records = records.filter(pl.col("symbol").is_in(list(symbols[spec])))
        if not records.is_empty():
            marked.append(records.with_columns(pl.lit(reason, pl.String).alias("gap_reason")))
            log.warning("%s %s marked for rebuilding: %s", layer.value, spec.label, reason)
    if not marked:
        return 0
    records = pl.concat(marked, how="vertical_relaxed").with_columns(
        pl.lit(False).alias("complete"),
        pl.lit(datetime.now(UTC)).cast(COVERAGE_SCHEMA["updated_at"]).alias("updated_at"),
    )
    warehouse.coverage.upsert(records)
    return records.height
