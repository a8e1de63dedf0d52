"""The silver stage of a run: build every planned silver partition and the cross-exchange
aggregates of the days rebuilt, in units of a chunk of days; then silver instruments."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime

import polars as pl

from models.enums import Dataset, Layer
from models.errors import InputError
from models.partitions import PartitionSpec
from models.selection import RunRequest
from storage import PartitionKey, Warehouse
from storage.planning import describe, plan
from storage.snapshots import latest_instruments, newest_snapshots
from tasks.chunks import chunk_specs, day_span
from tasks.context import RunContext
from tasks.listings import listing_history
from tasks.progress import Progress
from tasks.reports import SilverReport
from tasks.runtime import run_logger
from tasks.silver_day import SilverDay, SilverDaysFailed
from tasks.transform.common import FETCHED_AT, UTC_MS
from tasks.transform.instruments import merge_history
from tasks.transform.silver_batch import build_silver
from tasks.units import DIRECT, Units

# Silver units (chunks of days) running at once; between them they build at most
# `tasks.silver_day.DAYS_AT_ONCE` days at once.
TASKS_AT_ONCE = 4
# Times a unit's days that raised are built again (only those days, in a new unit).
SILVER_RETRIES = 1


def build_instruments(request: RunRequest, warehouse: Warehouse) -> int:
    """Silver instruments: per exchange, its listing history (every listing ever seen, with
    `first_seen`, `last_seen` and `listed`; delisted listings kept, `merge_history`) after
    its newest bronze snapshot, as one partition at that snapshot's day; the exchange's older
    silver instruments partitions, superseded by it, are removed. Returns rows written."""
    rows = 0
    newest = newest_snapshots(warehouse)
    for exchange in request.exchanges:
        bronze = latest_instruments(warehouse, exchange, newest=newest)
        if bronze is None or bronze.is_empty():
            continue
        day = bronze.get_column("fetched_at").max()
        seen = day if isinstance(day, datetime) else datetime.now(UTC)
        snapshot_day = seen.date()
        batch = build_silver(
            Dataset.INSTRUMENTS.value,
            bronze,
            exchange=exchange.value,
            interval=None,
            day=snapshot_day,
            symbols=[],
            closed=False,
            complete=False,
        )
        previous = listing_history(warehouse, exchange, newest_bronze={})
        snapshot = batch.data.with_columns(pl.lit(seen).cast(UTC_MS).alias(FETCHED_AT))
        history = merge_history(previous if not previous.is_empty() else None, snapshot)
        key = PartitionKey.instruments(exchange, snapshot_day, Layer.SILVER)
        rows += warehouse.write(key, history, closed=False, force=True).rows
        for old in warehouse.list_keys(Layer.SILVER, Dataset.INSTRUMENTS.value):
            if old.exchange == exchange.value and old.day != snapshot_day:
                warehouse.store.delete(old.path)
    return rows


async def _build_chunk(
    days: Sequence[date],
    specs: Sequence[PartitionSpec],
    request: RunRequest,
    ctx: RunContext,
    units: Units,
    progress: Progress,
) -> tuple[list[SilverDay], list[str]]:
    """A chunk's days, the days that raised built again (up to `SILVER_RETRIES` times, only
    them); every day's result, and the failures of a unit that ended without results."""
    results: dict[date, SilverDay] = {}
    todo = sorted(days)
    for attempt in range(SILVER_RETRIES + 1):
        try:
            built = await units.build_silver_days(
                todo,
                [s for s in specs if s.day in todo],
                request.symbol_map(),
                ctx,
                force=request.force,
                progress=progress,
            )
            results.update((r.day, r) for r in built)
            break
        except SilverDaysFailed as exc:
            results.update((r.day, r) for r in exc.results)
            todo = list(exc.raised)
            if attempt < SILVER_RETRIES:
                run_logger().warning("silver %s: building again: %s", day_span(todo), exc)
        except Exception as exc:
            return [results[d] for d in sorted(results)], [
                f"silver {day_span(todo)}: {type(exc).__name__}: {exc}"
            ]
    return [results[d] for d in sorted(results)], []


async def build_planned(
    request: RunRequest, ctx: RunContext, units: Units, specs: list[PartitionSpec]
) -> SilverReport:
    """One unit per chunk of days with planned partitions (`chunk_specs`, `TASKS_AT_ONCE` at
    once)."""
    report = SilverReport()
    progress = Progress("silver", total=len(specs))
    progress.update()
    gate = asyncio.Semaphore(TASKS_AT_ONCE)

    async def one(days: list[date], chunk: list[PartitionSpec]) -> None:
        async with gate:
            results, errors = await _build_chunk(days, chunk, request, ctx, units, progress)
        report.failures.extend(errors)
        failed_days = {r.day for r in results if r.failures}
        for result in results:
            report.summaries.extend(result.partitions)
            report.aggregates.extend(result.aggregates)
            report.failures.extend(result.failures)
        built = {r.day for r in results}
        failed = sum(1 for s in chunk if s.day in failed_days or s.day not in built)
        progress.unit_ended(len(chunk), failed)

    await asyncio.gather(*(one(days, chunk) for days, chunk in chunk_specs(specs)))
    progress.update(rows=report.rows)
    return report


async def run_silver(request: RunRequest, ctx: RunContext, units: Units = DIRECT) -> SilverReport:
    """Build every silver partition not yet complete (or damaged), the aggregates of the
    days and intervals rebuilt, and silver instruments; failures are named in the report."""
    log = run_logger()
    if request.rules:
        raise InputError(
            f"symbol rules {', '.join(request.rules)} are resolved by the bronze stage: build "
            "silver with the request it ran (`BronzeReport.request`)"
        )
    specs = plan(ctx.warehouse, Layer.SILVER, request)
    for spec, why in specs.damaged.items():
        log.warning("silver %s is damaged, redoing it: %s", spec.label, why)
    for line in describe(specs):
        log.info("silver to build: %s", line)
    report = await build_planned(request, ctx, units, specs)
    if specs:  # the next run (often a fresh process) then reads one coverage file
        await asyncio.to_thread(ctx.warehouse.coverage.compact)
    if Dataset.INSTRUMENTS in request.datasets:
        report.instruments = await asyncio.to_thread(build_instruments, request, ctx.warehouse)
    return report


def coverage_table(warehouse: Warehouse, request: RunRequest) -> list[dict[str, object]]:
    """Per exchange, dataset and interval of the request's days: rows present and expected,
    gaps, quarantined rows, complete symbol-days."""
    records = warehouse.coverage.query(
        layer=Layer.SILVER, start=request.days.start, end=request.days.end
    )
    if records.is_empty():
        return []
    table = (
        records.group_by("exchange", "dataset", "interval")
        .agg(
            pl.col("rows_present").sum().alias("rows"),
            pl.col("rows_expected").sum().alias("expected"),
            pl.col("gaps").list.len().sum().alias("gaps"),
            pl.col("quarantined").sum().alias("quarantined"),
            pl.col("complete").sum().alias("complete_symbol_days"),
        )
        .sort("exchange", "dataset", "interval", nulls_last=True)
    )
    return table.to_dicts()
