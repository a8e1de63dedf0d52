"""Backfill flow: a date range through bronze and silver, optionally fanned out in chunks."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

from prefect import flow, runtime
from prefect.deployments import run_deployment

from flows.bronze import run_bronze
from flows.common import PipelineFailed
from flows.silver import run_silver
from models.enums import Dataset, Exchange, Interval
from models.requests import RunRequest
from models.settings import Settings, load_settings
from tasks.runtime import run_logger


def chunk_ranges(start: date, end: date, chunk_days: int) -> list[tuple[date, date]]:
    """Split an inclusive range into consecutive inclusive chunks of `chunk_days` days."""
    if chunk_days < 1:
        return [(start, end)]
    out = []
    day = start
    while day <= end:
        last = min(end, day + timedelta(days=chunk_days - 1))
        out.append((day, last))
        day = last + timedelta(days=1)
    return out


async def run_backfill(request: RunRequest, settings: Settings) -> dict[str, Any]:
    """Bronze then silver for the whole request in this process; failures are collected."""
    bronze = await run_bronze(request, settings)
    silver = await run_silver(request, settings)
    return {
        "days": len(request.days),
        "bronze": bronze,
        "silver": silver,
        "failures": list(bronze["failures"]) + list(silver["failures"]),
    }


async def fan_out(
    request: RunRequest, chunk_days: int, deployment: str, parameters: dict[str, Any]
) -> dict[str, Any]:
    """Run each chunk as a child run of the same deployment, so any worker can take it."""
    chunks = chunk_ranges(request.days.start, request.days.end, chunk_days)
    log = run_logger()
    log.info(
        "fanning out %d days into %d chunk runs of %s", len(request.days), len(chunks), deployment
    )

    async def child(first: date, last: date) -> tuple[str, Any]:
        params = {
            **parameters,
            "start": first.isoformat(),
            "end": last.isoformat(),
            "chunk_days": 0,
        }
        run = await run_deployment(  # type: ignore[misc]
            name=deployment,
            parameters=params,
            timeout=None,
            as_subflow=True,
            idempotency_key=f"{runtime.flow_run.id}-{first}-{last}",
        )
        return f"{first}..{last}", run.state

    results = await asyncio.gather(*(child(a, b) for a, b in chunks))
    failures = [
        f"chunk {label}: {state.message if state else 'no state'}"
        for label, state in results
        if state is None or not state.is_completed()
    ]
    return {"days": len(request.days), "chunks": len(chunks), "failures": failures}


@flow(name="backfill", log_prints=False)
async def backfill_flow(
    start: date,
    end: date,
    exchanges: list[Exchange] | None = None,
    symbols: list[str] | None = None,
    intervals: list[Interval] | None = None,
    datasets: list[Dataset] | None = None,
    force: bool = False,
    chunk_days: int = 0,
) -> dict[str, Any]:
    """Backfill an inclusive UTC date range: only missing or incomplete days unless `force`.

    With `chunk_days` > 0 and when run from a deployment, the range is split into chunks
    that run as child flow runs of this deployment on its work pool (several workers share
    a long backfill); otherwise everything runs in this process.
    """
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
    # Only look the deployment up when fanning out could apply (it costs an API round trip).
    fan = chunk_days > 0 and len(request.days) > chunk_days
    deployment_name = runtime.deployment.name if fan else None
    if fan and deployment_name:
        parameters = {
            "exchanges": [e.value for e in exchanges] if exchanges else None,
            "symbols": symbols,
            "intervals": [i.value for i in intervals] if intervals else None,
            "datasets": [d.value for d in datasets] if datasets else None,
            "force": force,
        }
        report = await fan_out(request, chunk_days, f"backfill/{deployment_name}", parameters)
    else:
        report = await run_backfill(request, settings)
    PipelineFailed.raise_for("backfill", report)
    return report
