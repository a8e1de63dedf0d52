"""Silver flow: normalize, validate, quarantine, detect gaps and aggregate across exchanges."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
from prefect import flow
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.events import emit_event

from flows.common import Outcome, PipelineFailed, chunk_specs, plan
from flows.listings import latest_instruments, newest_snapshots
from flows.progress import Progress, publish
from models.enums import Dataset, Exchange, Interval, Layer
from models.requests import PartitionSpec, RunRequest
from models.settings import Settings, load_settings
from storage import PartitionKey, Warehouse
from tasks.prefect_tasks import build_silver_days_task, day_span
from tasks.runtime import reporting_progress
from tasks.silver_day import SilverDaysFailed
from tasks.transform.silver import build_silver

SILVER_COMPLETED_EVENT = "crypto-pipeline.silver.completed"


def build_instruments(request: RunRequest, warehouse: Warehouse) -> int:
    """Silver instruments from each exchange's newest bronze snapshot; returns rows written."""
    rows = 0
    newest = newest_snapshots(warehouse)
    for exchange in request.exchanges:
        bronze = latest_instruments(warehouse, exchange, newest=newest)
        if bronze is None or bronze.is_empty():
            continue
        day = bronze.get_column("fetched_at").max()
        snapshot_day = day.date() if isinstance(day, datetime) else datetime.now(UTC).date()
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
        key = PartitionKey(
            layer=Layer.SILVER,
            dataset=Dataset.INSTRUMENTS.value,
            exchange=exchange.value,
            interval=None,
            day=snapshot_day,
        )
        rows += warehouse.write(key, batch.data, closed=False).rows
    return rows


def quality_markdown(
    summaries: list[dict[str, Any]], failures: list[str], request: RunRequest
) -> str:
    """A short quality summary for people reading the run in the UI."""
    total = sum(int(s.get("rows", 0)) for s in summaries)
    quarantined = sum(int(s.get("quarantined", 0)) for s in summaries)
    gaps = sum(int(s.get("gaps", 0)) for s in summaries)
    gap_minutes = sum(float(s.get("gap_minutes", 0.0)) for s in summaries)
    lines = [
        f"# Silver quality: {request.days.start} to {request.days.end}",
        "",
        f"- partitions built: {len(summaries)}",
        f"- rows: {total:,}",
        f"- quarantined rows: {quarantined:,}",
        f"- gaps: {gaps} ({gap_minutes:,.0f} minutes missing on the expected grid)",
        f"- failed partitions: {len(failures)}",
    ]
    lines += [f"  - {f}" for f in failures]
    worst = sorted(summaries, key=lambda s: -float(s.get("gap_minutes", 0.0)))[:10]
    if worst and float(worst[0].get("gap_minutes", 0.0)) > 0:
        lines += ["", "## Largest gaps", "", "| partition | gaps | minutes |", "|---|---|---|"]
        lines += [
            f"| {s['partition']} | {s.get('gaps', 0)} | {float(s.get('gap_minutes', 0.0)):.0f} |"
            for s in worst
            if float(s.get("gap_minutes", 0.0)) > 0
        ]
    return "\n".join(lines)


# Silver tasks (chunks of days) running at once; between them they build at most
# `tasks.silver_day.DAYS_AT_ONCE` days at once.
TASKS_AT_ONCE = 4


async def build_days(
    request: RunRequest, settings: Settings, specs: list[PartitionSpec]
) -> tuple[Outcome, int]:
    """One task per chunk of days with planned partitions (`day_chunks`, `TASKS_AT_ONCE` at
    once); returns their outcome and the number of aggregates built."""
    symbols = {d: list(request.symbols_for(d)) for d in request.datasets}
    progress = Progress(stage="silver", total=len(specs))
    publish(progress)
    gate = asyncio.Semaphore(TASKS_AT_ONCE)
    outcome = Outcome()
    aggregates = 0

    async def one(days: list[date], chunk: list[PartitionSpec]) -> None:
        nonlocal aggregates
        async with gate:
            state = await build_silver_days_task(  # type: ignore[misc]
                days,
                chunk,
                symbols,
                list(request.exchanges),
                settings.warehouse,
                request.force,
                return_state=True,
            )
        failed = 0
        try:
            results = await state.aresult()
        except SilverDaysFailed as exc:
            results = [r.as_dict() for r in exc.results]
            failed_days = {r.day for r in exc.results if r.failures}
            failed = sum(1 for s in chunk if s.day in failed_days)
        except Exception as exc:
            outcome.failures.append(f"silver {day_span(days)}: {type(exc).__name__}: {exc}")
            results = []
            failed = len(chunk)
        for result in results:
            outcome.summaries.extend(result["partitions"])
            outcome.failures.extend(result["failures"])
            aggregates += len(result["aggregates"])
        progress.task_ended(len(chunk))
        progress.failed += failed
        publish(progress)

    def reported(partitions: int) -> None:
        progress.report(partitions)
        publish(progress)

    with reporting_progress(reported):  # the tasks report each day as it ends
        await asyncio.gather(*(one(days, chunk) for days, chunk in chunk_specs(specs)))
    return outcome, aggregates


async def run_silver(request: RunRequest, settings: Settings) -> dict[str, Any]:
    """Build every silver partition not yet complete, and the cross-exchange aggregates of
    the days and intervals rebuilt, one task per chunk of days."""
    warehouse = Warehouse(settings.warehouse)
    specs = plan(warehouse, Layer.SILVER, request)
    outcome, aggregates = await build_days(request, settings, specs)
    if specs:  # the next run (often a fresh process) then reads one coverage file
        await asyncio.to_thread(warehouse.coverage.compact)
    instruments_rows = (
        build_instruments(request, warehouse) if Dataset.INSTRUMENTS in request.datasets else 0
    )
    if outcome.summaries:
        await acreate_table_artifact(
            coverage_table(warehouse, request),
            key="silver-coverage",
            description="Rows, gaps and quarantined rows per exchange and dataset",
        )
        await acreate_markdown_artifact(
            quality_markdown(outcome.summaries, outcome.failures, request),
            key="silver-quality",
            description="Silver data-quality summary",
        )
    report = {
        "partitions": len(outcome.summaries),
        "rows": sum(int(s.get("rows", 0)) for s in outcome.summaries),
        "quarantined": sum(int(s.get("quarantined", 0)) for s in outcome.summaries),
        "gaps": sum(int(s.get("gaps", 0)) for s in outcome.summaries),
        "aggregates": aggregates,
        "instruments": instruments_rows,
        "failures": outcome.failures,
    }
    if outcome.summaries or aggregates:
        emit_event(
            event=SILVER_COMPLETED_EVENT,
            resource={
                "prefect.resource.id": "crypto-pipeline.silver",
                "prefect.resource.name": "silver",
            },
            payload={
                "start": request.days.start.isoformat(),
                "end": request.days.end.isoformat(),
                "partitions": report["partitions"],
                "failures": len(outcome.failures),
            },
        )
    return report


def coverage_table(warehouse: Warehouse, request: RunRequest) -> list[dict[str, Any]]:
    """Per exchange, dataset and interval: rows present/expected, gaps, quarantined."""
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


@flow(name="silver", log_prints=False)
async def silver_flow(
    start: date,
    end: date,
    exchanges: list[Exchange] | None = None,
    symbols: list[str] | None = None,
    intervals: list[Interval] | None = None,
    datasets: list[Dataset] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Build silver for an inclusive UTC date range from what bronze holds."""
    settings = load_settings()
    request = RunRequest.build(
        start=start,
        end=end,
        settings=settings,
        exchanges=exchanges,
        symbols=symbols,
        intervals=intervals,
        datasets=datasets,
        force=force,
    )
    report = await run_silver(request, settings)
    PipelineFailed.raise_for("silver", report)
    return report
