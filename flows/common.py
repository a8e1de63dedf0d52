"""Planning and execution helpers shared by the layer flows."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl

from models.enums import Layer
from models.requests import PartitionSpec, RunRequest
from storage import PartitionKey, Warehouse
from tasks.runtime import run_logger

# Fetch tasks of one exchange running at once; within them, at most `tasks.bronze.DAYS_AT_ONCE`
# days of the exchange are fetched at once, and the clients' rate limiters set the pace.
PER_EXCHANGE_CONCURRENCY = 4
# Most days one task holds (a month): a long backfill runs few task runs, each paying the
# Prefect API's per-run overhead once (a year is 12 per exchange, not 53). A retry redoes only
# what failed: fetch skips the days recorded complete, silver rebuilds the days that raised.
MAX_DAYS_PER_TASK = 31
# Threads reading stored files back when planning (pyarrow decodes outside the GIL).
VALIDATE_THREADS = 8


def day_chunks(days: Sequence[date], max_days: int = MAX_DAYS_PER_TASK) -> list[list[date]]:
    """The sorted days in as few contiguous chunks of at most `max_days` as possible, their
    sizes differing by at most one: with 7, 14 days are two chunks of 7, 15 days 5 + 5 + 5."""
    ordered = sorted(days)
    if not ordered:
        return []
    count = math.ceil(len(ordered) / max_days)
    size, larger = divmod(len(ordered), count)
    chunks: list[list[date]] = []
    start = 0
    for i in range(count):
        end = start + size + (1 if i < larger else 0)
        chunks.append(ordered[start:end])
        start = end
    return chunks


def chunk_specs(
    specs: Sequence[PartitionSpec], max_days: int = MAX_DAYS_PER_TASK
) -> list[tuple[list[date], list[PartitionSpec]]]:
    """The specs' days in `day_chunks`, each chunk with its specs (in their given order)."""
    chunks = day_chunks(sorted({s.day for s in specs}), max_days)
    which = {day: i for i, chunk in enumerate(chunks) for day in chunk}
    grouped: list[list[PartitionSpec]] = [[] for _ in chunks]
    for spec in specs:
        grouped[which[spec.day]].append(spec)
    return list(zip(chunks, grouped, strict=True))


@dataclass
class Outcome:
    """Results of a layer's tasks: a summary per partition and named failures."""

    summaries: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def extend(self, other: Outcome) -> None:
        self.summaries.extend(other.summaries)
        self.failures.extend(other.failures)


class PipelineFailed(Exception):
    """Raised at the end of a flow whose partitions partly failed; names each failure."""

    @classmethod
    def raise_for(cls, layer: str, report: dict[str, Any]) -> None:
        failures = report.get("failures") or []
        if failures:
            raise cls(f"{len(failures)} {layer} partition(s) failed: " + " | ".join(failures))


StatusKey = tuple[str, str, str | None, date]


@dataclass
class CoverageStatus:
    """What the coverage index says about a request's partitions (one query)."""

    complete: dict[StatusKey, set[str]] = field(default_factory=lambda: defaultdict(set))
    stamps: dict[StatusKey, set[str]] = field(default_factory=lambda: defaultdict(set))
    records: pl.DataFrame = field(default_factory=pl.DataFrame)


def coverage_status(warehouse: Warehouse, layer: Layer, request: RunRequest) -> CoverageStatus:
    """Complete symbols and recorded file stamps per (exchange, dataset, interval, day)."""
    records = warehouse.coverage.query(layer=layer, start=request.days.start, end=request.days.end)
    status = CoverageStatus(records=records)
    if records.is_empty():
        return status
    columns = ("exchange", "dataset", "interval", "day", "symbol", "complete", "file_stamp")
    for exchange, dataset, interval, day, symbol, complete, stamp in records.select(
        columns
    ).iter_rows():
        key = (exchange, dataset, interval, day)
        if complete:
            status.complete[key].add(symbol)
        if stamp is not None:
            status.stamps[key].add(stamp)
    return status


def _status_key(spec: PartitionSpec) -> StatusKey:
    return (
        spec.exchange.value,
        spec.dataset.value,
        spec.interval.value if spec.interval else None,
        spec.day,
    )


class Plan(list[PartitionSpec]):
    """Partitions still to do; `damaged` maps those recorded complete whose stored file does
    not read back (truncated, corrupted) to the reason, so they are redone, not skipped."""

    def __init__(
        self, specs: Sequence[PartitionSpec], damaged: dict[PartitionSpec, str] | None = None
    ) -> None:
        super().__init__(specs)
        self.damaged = damaged or {}


def partition_key(layer: Layer, spec: PartitionSpec) -> PartitionKey:
    return PartitionKey(
        layer=layer,
        dataset=spec.dataset.value,
        exchange=spec.exchange.value,
        interval=spec.interval.value if spec.interval else None,
        day=spec.day,
    )


def damaged_partitions(
    warehouse: Warehouse,
    layer: Layer,
    specs: Sequence[PartitionSpec],
    status: CoverageStatus | None = None,
) -> dict[PartitionSpec, str]:
    """The specs whose stored file exists but fails `Warehouse.validate`.

    A file still carrying a stamp recorded in coverage when it was written (or last checked)
    is the whole file that was written and is not read back; the others are read back in
    threads, and those that pass get their stamp recorded so the next plan skips them.
    """
    status = status or CoverageStatus()
    keys = {spec: partition_key(layer, spec) for spec in specs}
    current = warehouse.stamps(list(keys.values()))
    suspect = [
        spec
        for spec, key in keys.items()
        if key in current and current[key] not in status.stamps.get(_status_key(spec), set())
    ]

    def check(spec: PartitionSpec) -> str | None:
        return warehouse.validate(keys[spec])

    with ThreadPoolExecutor(max_workers=VALIDATE_THREADS) as pool:
        problems = list(pool.map(check, suspect))
    damaged = {spec: why for spec, why in zip(suspect, problems, strict=True) if why}
    checked = {_status_key(s): current[keys[s]] for s in suspect if s not in damaged}
    _record_checked_stamps(warehouse, status.records, checked)
    return damaged


def _record_checked_stamps(
    warehouse: Warehouse, records: pl.DataFrame, checked: dict[StatusKey, str]
) -> None:
    """Re-publish the coverage records of files that read back whole, with their stamp.

    `updated_at` is kept, so a record written meanwhile by a newer fetch still wins.
    """
    if not checked or records.is_empty():
        return
    stamps = pl.DataFrame(
        [(*key, stamp) for key, stamp in checked.items()],
        schema={
            "exchange": pl.String(),
            "dataset": pl.String(),
            "interval": pl.String(),
            "day": pl.Date(),
            "checked_stamp": pl.String(),
        },
        orient="row",
    )
    restamped = records.join(
        stamps, on=["exchange", "dataset", "interval", "day"], how="inner", nulls_equal=True
    ).with_columns(pl.col("checked_stamp").alias("file_stamp"))
    if not restamped.is_empty():
        warehouse.coverage.upsert(restamped.drop("checked_stamp"))


def plan(warehouse: Warehouse, layer: Layer, request: RunRequest) -> Plan:
    """Partitions still to do for `layer`: every one if forced, else those not complete or
    whose stored file is damaged (reported in the run log)."""
    specs = list(request.partitions(derived=layer is not Layer.BRONZE))
    if request.force:
        return Plan(specs)
    status = coverage_status(warehouse, layer, request)
    todo: list[PartitionSpec] = []
    complete: list[PartitionSpec] = []
    for spec in specs:
        wanted = set(request.symbols_for(spec.dataset))
        done = wanted <= status.complete.get(_status_key(spec), set())
        (complete if done else todo).append(spec)
    damaged = damaged_partitions(warehouse, layer, complete, status)
    log = run_logger()
    for spec, why in damaged.items():
        log.warning("%s %s is damaged, redoing it: %s", layer.value, spec.label, why)
    redo = set(todo) | set(damaged)
    return Plan([s for s in specs if s in redo], damaged)


def summary_table(summaries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for a table artifact: one per partition, small and readable."""
    rows = []
    for s in summaries:
        rows.append(
            {
                "partition": s.get("partition"),
                "rows": s.get("rows", 0),
                "gaps": s.get("gaps", ""),
                "quarantined": s.get("quarantined", ""),
                "not_listed": ", ".join(s.get("symbols_not_listed", []) or []),
            }
        )
    return sorted(rows, key=lambda r: str(r["partition"]))
