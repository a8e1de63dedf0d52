"""Silver flow: normalize, validate, quarantine, detect gaps and aggregate across exchanges."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.events import emit_event

from flows.artifacts import progress_artifact, quality_markdown
from flows.entry import run_context
from models.selection import RunRequest, Selection
from tasks.context import RunContext
from tasks.prefect_tasks import PREFECT
from tasks.reports import PipelineFailed, SilverReport
from tasks.silver_stage import coverage_table, run_silver

SILVER_COMPLETED_EVENT = "crypto-pipeline.silver.completed"


async def silver_stage(request: RunRequest, ctx: RunContext) -> SilverReport:
    """The silver stage as task runs, with its artifacts and the event that triggers the
    publish deployment when something was built."""
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
    if report.summaries or report.aggregates:
        emit_event(
            event=SILVER_COMPLETED_EVENT,
            resource={
                "prefect.resource.id": "crypto-pipeline.silver",
                "prefect.resource.name": "silver",
            },
            payload={
                "start": request.days.start.isoformat(),
                "end": request.days.end.isoformat(),
                "partitions": report.partitions,
                "failures": len(report.failures),
            },
        )
    return report


@flow(name="silver", log_prints=False, flow_run_name="silver {selection.start}..{selection.end}")
async def silver_flow(selection: Selection) -> SilverReport:
    """Build silver for an inclusive UTC date range from what bronze holds."""
    ctx = run_context()
    report = await silver_stage(selection.resolve(ctx.settings), ctx)
    PipelineFailed.raise_for("silver", report.failures)
    return report
