"""Backfill flow: a date range through bronze and silver, optionally fanned out in chunks."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated

from prefect import flow, runtime
from prefect.deployments import run_deployment
from pydantic import Field

from flows.bronze import bronze_stage
from flows.entry import run_context
from flows.silver import silver_stage
from models.selection import RunRequest, Selection
from tasks.chunks import chunk_ranges
from tasks.context import RunContext
from tasks.reports import BackfillReport, PipelineFailed
from tasks.runtime import run_logger


async def backfill_here(request: RunRequest, ctx: RunContext) -> BackfillReport:
    """Bronze then silver for the whole request in this process, as task runs."""
    bronze = await bronze_stage(request, ctx)
    silver = await silver_stage(request, ctx)
    return BackfillReport(days=len(request.days), bronze=bronze, silver=silver)


async def fan_out(selection: Selection, chunk_days: int, deployment: str) -> BackfillReport:
    """Run each chunk as a child run of the same deployment, so any worker can take it."""
    chunks = chunk_ranges(selection.start, selection.end, chunk_days)
    run_logger().info(
        "fanning out %d days into %d chunk runs of %s",
        len(selection.days()),
        len(chunks),
        deployment,
    )

    async def child(first: date, last: date) -> tuple[str, object]:
        part = selection.model_copy(update={"start": first, "end": last})
        run = await run_deployment(  # type: ignore[misc]
            name=deployment,
            parameters={"selection": part.model_dump(mode="json"), "chunk_days": 0},
            timeout=None,
            as_subflow=True,
            idempotency_key=f"{runtime.flow_run.id}-{first}-{last}",
        )
        return f"{first}..{last}", run.state

    results = await asyncio.gather(*(child(a, b) for a, b in chunks))
    failures = [
        f"chunk {label}: {getattr(state, 'message', None) or 'no state'}"
        for label, state in results
        if state is None or not state.is_completed()  # type: ignore[attr-defined]
    ]
    return BackfillReport(days=len(selection.days()), chunks=len(chunks), chunk_failures=failures)


@flow(
    name="backfill",
    log_prints=False,
    flow_run_name="backfill {selection.start}..{selection.end}",
)
async def backfill_flow(
    selection: Selection,
    chunk_days: Annotated[
        int,
        Field(
            ge=0,
            title="Chunk days",
            description="When run from a deployment and > 0: run the range as child runs of "
            "this many days each, on any worker of the pool",
        ),
    ] = 0,
) -> BackfillReport:
    """Backfill an inclusive UTC date range: only missing or incomplete days unless `force`.

    With `chunk_days` > 0 and when run from a deployment, the range is split into chunks
    that run as child flow runs of this deployment on its work pool (several workers share
    a long backfill); otherwise everything runs in this process.
    """
    # Only look the deployment up when fanning out could apply (it costs an API round trip).
    fan = chunk_days > 0 and len(selection.days()) > chunk_days
    deployment_name = runtime.deployment.name if fan else None
    if fan and deployment_name:
        report = await fan_out(selection, chunk_days, f"backfill/{deployment_name}")
    else:
        ctx = run_context()
        report = await backfill_here(selection.resolve(ctx.settings), ctx)
    PipelineFailed.raise_for("backfill", report.failures)
    return report
