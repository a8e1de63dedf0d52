"""Silver flow: normalize, validate, quarantine, detect gaps and aggregate across exchanges."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from prefect import flow
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.context import FlowRunContext
from prefect.events import emit_event

from flows.artifacts import progress_artifact, quality_markdown
from flows.entry import run_context
from flows.params import titled
from models.selection import RunRequest, Selection
from tasks.context import RunContext
from tasks.prefect_tasks import PREFECT
from tasks.reports import PipelineFailed, SilverReport
from tasks.silver_stage import coverage_table, run_silver

SILVER_COMPLETED_EVENT = "crypto-pipeline.silver.completed"


def is_top_level_run() -> bool:
    """True outside a flow run and in a flow run that has no parent: a chunk run of a fan-out
    and a flow called inside another flow leave the event to the run they belong to."""
    ctx = FlowRunContext.get()
    return ctx is None or ctx.flow_run is None or ctx.flow_run.parent_task_run_id is None


def emit_silver_completed(start: date, end: date, **payload: int) -> None:
    """The event that triggers the publish deployment: once per top-level run."""
    emit_event(
        event=SILVER_COMPLETED_EVENT,
        resource={
            "prefect.resource.id": "crypto-pipeline.silver",
            "prefect.resource.name": "silver",
        },
        payload={"start": start.isoformat(), "end": end.isoformat(), **payload},
    )


async def silver_stage(request: RunRequest, ctx: RunContext) -> SilverReport:
    """The silver stage as task runs, with its artifacts and, in a top-level run that built
    something, the event that triggers the publish deployment."""
    async with progress_artifact("silver", "Silver partitions built"):
        report = await run_silver(request, ctx, PREFECT)
    if report.summaries:
        await acreate_table_artifact(
            coverage_table(ctx.warehouse, request),
            key="silver-coverage",
            description="Rows, gaps and quarantined rows per exchange and dataset",
        )
        await acreate_markdown_artifact(
            quality_markdown(
                report.summaries, report.failures, f"{request.days.start} to {request.days.end}"
            ),
            key="silver-quality",
            description="Silver data-quality summary",
        )
    if (report.summaries or report.aggregates) and is_top_level_run():
        emit_silver_completed(
            request.days.start,
            request.days.end,
            partitions=report.partitions,
            failures=len(report.failures),
        )
    return report


@flow(name="silver", log_prints=False, flow_run_name="silver {selection.start}..{selection.end}")
async def silver_flow(selection: Annotated[Selection, titled("Selection")]) -> SilverReport:
    """Build silver for an inclusive UTC date range from what bronze holds."""
    ctx = run_context()
    report = await silver_stage(selection.resolve(ctx.settings), ctx)
    PipelineFailed.raise_for("silver", report.failures)
    return report
