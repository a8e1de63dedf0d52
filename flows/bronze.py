"""Bronze flow: fetch every missing daily partition of a selection into raw Parquet."""

from __future__ import annotations

import os

from prefect import flow
from prefect.artifacts import acreate_table_artifact

from flows.artifacts import fetch_rows, progress_artifact
from flows.entry import run_context
from models.selection import RunRequest, Selection
from storage.coverage import COVERAGE_DIR
from tasks.bronze_stage import run_bronze
from tasks.context import RunContext
from tasks.prefect_tasks import PREFECT
from tasks.reports import BronzeReport, PipelineFailed


class WarehouseWriteFailed(Exception):
    """The warehouse could not be written outside any one partition (the coverage index
    compacted at the end of the stage): names what was being written and why."""


async def bronze_stage(request: RunRequest, ctx: RunContext) -> BronzeReport:
    """The bronze stage as task runs, with its progress and partition artifacts.

    A partition's write failure is named in the report by the stage; one that escapes it
    (compacting the coverage index, e.g. a full disk) ends the run naming the file."""
    try:
        async with progress_artifact("bronze", "Bronze partitions fetched"):
            report = await run_bronze(request, ctx, PREFECT)
    except OSError as exc:
        where = exc.filename or f"the coverage index {ctx.warehouse.uri}/{COVERAGE_DIR}"
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise WarehouseWriteFailed(
            f"bronze {request.days.start}..{request.days.end}: {reason} writing {where}"
        ) from exc
    if report.summaries:
        await acreate_table_artifact(
            fetch_rows(report.summaries),
            key="bronze-partitions",
            description="Rows per bronze partition",
        )
    if report.universe:
        await acreate_table_artifact(
            [
                {"rule": rule, "symbols": ", ".join(found)}
                for rule, found in report.universe.items()
            ],
            key="universe",
            description="Symbols each rule (top:N, all:QUOTE) resolved to for this run",
        )
    return report


@flow(name="bronze", log_prints=False, flow_run_name="bronze {selection.start}..{selection.end}")
async def bronze_flow(selection: Selection) -> BronzeReport:
    """Fetch raw data for an inclusive UTC date range; complete closed days are skipped."""
    ctx = run_context()
    report = await bronze_stage(selection.resolve(ctx.settings), ctx)
    PipelineFailed.raise_for("bronze", report.failures)
    return report
