"""Bronze flow: fetch every missing daily partition of a request into raw Parquet."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import date
from typing import Any

from prefect import flow
from prefect.artifacts import (
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)

from flows.common import (
    PER_EXCHANGE_CONCURRENCY,
    Outcome,
    PipelineFailed,
    chunk_specs,
    plan,
    summary_table,
)
from flows.listings import (
    LISTING_COLUMNS,
    check_listed,
    has_fresh_snapshot,
    latest_instruments,
    newest_snapshots,
)
from flows.progress import Progress, publish
from models.enums import Dataset, Exchange, Interval, Layer
from models.requests import PartitionSpec, RunRequest
from models.settings import Settings, load_settings
from storage import Warehouse
from tasks.bronze import DayFetchFailed, InstrumentsFailed
from tasks.prefect_tasks import day_span, fetch_days_task, fetch_instruments_task
from tasks.runtime import client_stats, close_clients, reporting_progress, run_logger


async def refresh_instruments(
    request: RunRequest, settings: Settings, warehouse: Warehouse
) -> tuple[list[str], Outcome]:
    """Snapshot listings once a day per exchange, then refuse symbols nobody lists."""
    outcome = Outcome()
    newest = newest_snapshots(warehouse)
    stale = [
        e
        for e in request.exchanges
        if request.force or not has_fresh_snapshot(warehouse, e, newest=newest)
    ]
    if stale:  # one task for all: a request or two per exchange
        state = await fetch_instruments_task(  # type: ignore[misc]
            stale, settings.warehouse, settings.sandbox_url, return_state=True
        )
        try:
            outcome.summaries.extend(await state.aresult())
        except InstrumentsFailed as exc:
            outcome.summaries.extend(s.as_dict() for s in exc.summaries)
            outcome.failures.extend(exc.errors)
        except Exception as exc:
            names = ", ".join(e.value for e in stale)
            outcome.failures.append(f"instruments of {names}: {type(exc).__name__}: {exc}")
        newest = newest_snapshots(warehouse)
    listings = {
        e: frame
        for e in request.exchanges
        if (frame := latest_instruments(warehouse, e, newest=newest, columns=LISTING_COLUMNS))
        is not None
    }
    notices = check_listed(request, listings) if len(listings) == len(request.exchanges) else []
    return notices, outcome


FetchGroup = tuple[Exchange, list[date], list[PartitionSpec]]


def fetch_groups(specs: list[PartitionSpec]) -> list[FetchGroup]:
    """One group per fetch task: each exchange's planned days in `day_chunks` (as few as
    possible, each of at most `MAX_DAYS_PER_TASK` days), with their specs. Tasks never mix
    exchanges, so each exchange's rate limit paces only its own."""
    by_exchange: dict[Exchange, list[PartitionSpec]] = {}
    for spec in specs:
        by_exchange.setdefault(spec.exchange, []).append(spec)
    return [
        (exchange, days, group)
        for exchange, exchange_specs in sorted(by_exchange.items())
        for days, group in chunk_specs(exchange_specs)
    ]


async def fetch_all(
    request: RunRequest, settings: Settings, warehouse: Warehouse
) -> tuple[list[PartitionSpec], Outcome]:
    """Plan from coverage, then one fetch task per group of `fetch_groups` (an exchange's
    chunk of days), at most `PER_EXCHANGE_CONCURRENCY` at once per exchange; the tasks fetch
    at most `tasks.bronze.DAYS_AT_ONCE` days of an exchange at once between them."""
    specs = plan(warehouse, Layer.BRONZE, request)
    progress = Progress(stage="bronze", total=len(specs))
    publish(progress)
    artifact_id = (
        await acreate_progress_artifact(
            0.0, key="bronze-progress", description="Bronze partitions fetched"
        )
        if specs
        else None
    )
    fetch = fetch_days_task.with_options(
        retries=settings.task_retries,
        retry_delay_seconds=[
            settings.task_retry_delay_s * 3**i for i in range(settings.task_retries)
        ],
    )
    symbols = {d: list(request.symbols_for(d)) for d in request.datasets}
    gates: dict[Exchange, asyncio.Semaphore] = defaultdict(
        lambda: asyncio.Semaphore(PER_EXCHANGE_CONCURRENCY)
    )
    outcome = Outcome()

    async def one(exchange: Exchange, days: list[date], group: list[PartitionSpec]) -> None:
        async with gates[exchange]:
            state = await fetch(  # type: ignore[misc]
                exchange,
                days,
                group,
                symbols,
                settings.warehouse,
                settings.sandbox_url,
                request.force,
                [s for s in group if s in specs.damaged],
                return_state=True,
            )
        failed = 0
        try:
            outcome.summaries.extend(await state.aresult())
        except DayFetchFailed as exc:
            outcome.summaries.extend(s.as_dict() for s in exc.summaries)
            outcome.failures.extend(exc.errors)
            # partitions with no summary (the whole day failed) or with failed symbols
            failed = len(group) - sum(1 for s in exc.summaries if not s.failures)
        except Exception as exc:
            outcome.failures.append(
                f"{exchange.value}/{day_span(days)}: {type(exc).__name__}: {exc}"
            )
            failed = len(group)
        progress.task_ended(len(group))
        progress.failed += failed
        show()

    def show() -> None:
        progress.requests = sum(s["requests"] for s in client_stats().values())
        publish(progress)

    def reported(partitions: int) -> None:
        progress.report(partitions)
        show()

    with reporting_progress(reported):  # the tasks report each day as it ends
        await asyncio.gather(*(one(e, d, g) for e, d, g in fetch_groups(specs)))
    progress.rows = sum(int(s.get("rows", 0)) for s in outcome.summaries)
    publish(progress)
    if artifact_id is not None:
        await aupdate_progress_artifact(artifact_id, 100.0)
    return specs, outcome


@flow(name="bronze", log_prints=False)
async def bronze_flow(
    start: date,
    end: date,
    exchanges: list[Exchange] | None = None,
    symbols: list[str] | None = None,
    intervals: list[Interval] | None = None,
    datasets: list[Dataset] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Fetch raw data for an inclusive UTC date range; complete closed days are skipped."""
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
    report = await run_bronze(request, settings)
    PipelineFailed.raise_for("bronze", report)
    return report


async def run_bronze(request: RunRequest, settings: Settings) -> dict[str, Any]:
    """Instruments snapshot, listing check, then every planned partition; never raises on
    partition failures (they are listed in the report's `failures`)."""
    log = run_logger()
    warehouse = Warehouse(settings.warehouse)
    try:
        notices, outcome = await refresh_instruments(request, settings, warehouse)
        for notice in notices:
            log.info(notice)
        specs, fetched = await fetch_all(request, settings, warehouse)
        outcome.extend(fetched)
        stats = client_stats()
        if specs:  # the next run (often a fresh process) then reads one coverage file
            await asyncio.to_thread(warehouse.coverage.compact)
    finally:
        await close_clients()
    rows = summary_table(outcome.summaries)
    if rows:
        await acreate_table_artifact(
            rows, key="bronze-partitions", description="Rows per bronze partition"
        )
    result = {
        "partitions": len(outcome.summaries),
        "rows": sum(int(s.get("rows", 0)) for s in outcome.summaries),
        "failures": outcome.failures,
        "requests": stats,
        "notices": notices,
    }
    return result
