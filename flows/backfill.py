"""Backfill flow: a date range through bronze and silver, optionally fanned out in chunks."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from prefect import flow, runtime
from prefect.artifacts import acreate_table_artifact
from prefect.deployments import run_deployment

from flows.bronze import bronze_stage
from flows.entry import run_context
from flows.params import titled
from flows.report import plan_run
from flows.silver import emit_silver_completed, is_top_level_run, silver_stage
from models.selection import RunRequest, Selection
from models.settings import ALLOWANCE_ENV, local_share
from tasks.chunks import chunk_ranges
from tasks.context import RunContext
from tasks.reports import BackfillReport, PipelineFailed
from tasks.runtime import run_logger

# Chunk runs of one fan-out in flight at once, unless the deployment's parameters say otherwise.
DEFAULT_MAX_CHUNK_RUNS = 2
# Seconds between two looks of the parent at a running chunk's state.
CHUNK_POLL_S = 2.0


@dataclass(frozen=True)
class ChunkOutcome:
    """How one chunk run ended, as the parent saw it through the API."""

    chunk: str
    state: str
    message: str
    completed: bool
    ran: bool  # reached Completed or Failed: it ran its stages (a Failed one lands the rest)

    @classmethod
    def of(cls, chunk: str, state: Any) -> ChunkOutcome:
        if state is None:
            return cls(chunk, "Unknown", "no state", completed=False, ran=False)
        return cls(
            chunk,
            str(state.name),
            str(state.message or ""),
            completed=bool(state.is_completed()),
            ran=bool(state.is_completed() or state.is_failed()),
        )


async def backfill_here(request: RunRequest, ctx: RunContext) -> BackfillReport:
    """Bronze then silver for the whole request in this process, as task runs."""
    bronze = await bronze_stage(request, ctx)
    # the request with its universe rules (top:N, all:QUOTE) resolved by the bronze stage
    silver = await silver_stage(bronze.request or request, ctx)
    return BackfillReport(days=len(request.days), bronze=bronze, silver=silver)


def chunk_job_variables(allowance: str, max_chunk_runs: int) -> dict[str, Any] | None:
    """A per-process allowance (`local`) would let every chunk run believe it owns the
    exchanges' whole allowance: the chunk runs then split it (`local/N`, N = chunk runs in
    flight). A shared backend (a Redis URL) or an explicit `local/N` is left to each worker's
    environment; a URL is never put in job variables (the API stores them in plain text)."""
    if max_chunk_runs < 2 or local_share(allowance) != 1:
        return None
    return {"env": {ALLOWANCE_ENV: f"local/{max_chunk_runs}"}}


async def fan_out(
    selection: Selection,
    chunk_days: int,
    max_chunk_runs: int,
    deployment: str,
    ctx: RunContext,
) -> BackfillReport:
    """Run each chunk as a child run of the same deployment, at most `max_chunk_runs` at once,
    so any worker can take it; a table artifact names each chunk's end and one event asks for
    the publish. A range with nothing to do (the coverage index's plan, as the CLI's) starts
    no chunk run."""
    log = run_logger()
    # As the CLI does before starting anything: a range with nothing to do starts no chunk
    # runs and asks for no publish (a recheck of the Binance archive is work in itself).
    planned = await asyncio.to_thread(plan_run, ctx.warehouse, selection.resolve(ctx.settings))
    if planned.empty and not ctx.settings.binance_archive_recheck:
        log.info(
            "nothing to do: every partition of %s..%s is complete; no chunk runs",
            selection.start,
            selection.end,
        )
        return BackfillReport(days=len(selection.days()))
    chunks = chunk_ranges(selection.start, selection.end, chunk_days)
    job_variables = chunk_job_variables(ctx.settings.allowance, max_chunk_runs)
    log.info(
        "fanning out %d days into %d chunk runs of %s, at most %d at once (allowance %s)",
        len(selection.days()),
        len(chunks),
        deployment,
        max_chunk_runs,
        job_variables["env"][ALLOWANCE_ENV] if job_variables else ctx.settings.allowance,
    )
    gate = asyncio.Semaphore(max_chunk_runs)

    async def child(first: date, last: date) -> ChunkOutcome:
        part = selection.model_copy(update={"start": first, "end": last})
        async with gate:
            run = await run_deployment(  # type: ignore[misc]
                name=deployment,
                parameters={"selection": part.model_dump(mode="json"), "chunk_days": 0},
                timeout=None,
                poll_interval=CHUNK_POLL_S,
                as_subflow=True,
                idempotency_key=f"{runtime.flow_run.id}-{first}-{last}",
                job_variables=job_variables,
            )
        return ChunkOutcome.of(f"{first}..{last}", run.state)

    outcomes = await asyncio.gather(*(child(a, b) for a, b in chunks))
    await acreate_table_artifact(
        [{"chunk": o.chunk, "state": o.state, "message": o.message} for o in outcomes],
        key="backfill-chunks",
        description=f"Chunk runs of backfill {selection.start}..{selection.end}",
    )
    failures = [f"chunk {o.chunk}: {o.message or o.state}" for o in outcomes if not o.completed]
    if any(o.ran for o in outcomes) and is_top_level_run():
        emit_silver_completed(
            selection.start,
            selection.end,
            chunks=len(chunks),
            failed_chunks=len(failures),
        )
    return BackfillReport(days=len(selection.days()), chunks=len(chunks), chunk_failures=failures)


@flow(
    name="backfill",
    log_prints=False,
    flow_run_name="backfill {selection.start}..{selection.end}",
)
async def backfill_flow(
    selection: Annotated[Selection, titled("Selection")],
    chunk_days: Annotated[
        int,
        titled(
            "Chunk days",
            ge=0,
            description="When run from a deployment and > 0: run the range as child runs of "
            "this many days each, on any worker of the pool",
        ),
    ] = 0,
    max_chunk_runs: Annotated[
        int,
        titled(
            "Max chunk runs",
            ge=1,
            le=64,
            description="Chunk runs in flight at once; the next starts when one ends",
        ),
    ] = DEFAULT_MAX_CHUNK_RUNS,
) -> BackfillReport:
    """Backfill an inclusive UTC date range: only missing or incomplete days unless `force`.

    With `chunk_days` > 0 and when run from a deployment, the range is split into chunks
    that run as child flow runs of this deployment on its work pool (several workers share
    a long backfill), at most `max_chunk_runs` at once; otherwise everything runs in this
    process. The exchanges' allowance is shared by the chunk runs (see `chunk_job_variables`).

    Args:
        selection: The UTC days and, optionally, exchanges, symbols (or a rule such as top:10),
            intervals and datasets (empty: the configured defaults), and force.
        chunk_days: When run from a deployment and > 0: split the range into child runs of this
            many days each, taken by any worker of the pool.
        max_chunk_runs: Chunk runs at once; they share the exchanges' allowance.
    """
    ctx = run_context()  # a configured shared allowance that is down fails the run here
    # Only look the deployment up when fanning out could apply (it costs an API round trip).
    fan = chunk_days > 0 and len(selection.days()) > chunk_days
    deployment_name = runtime.deployment.name if fan else None
    if fan and deployment_name:
        report = await fan_out(
            selection, chunk_days, max_chunk_runs, f"backfill/{deployment_name}", ctx
        )
    else:
        report = await backfill_here(selection.resolve(ctx.settings), ctx)
    PipelineFailed.raise_for("backfill", report.failures)
    return report
