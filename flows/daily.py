"""Daily flow: one UTC date (default yesterday) through bronze, silver and gold."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from prefect import flow

from flows.backfill import backfill_here
from flows.entry import run_context
from flows.gold import publish_stage
from flows.params import titled
from models.dates import utc_today
from models.selection import Selection
from tasks.reports import BackfillReport, PipelineFailed


def daily_run_name() -> str:
    """`daily 2024-03-01`: the day the run ingests (yesterday when not given)."""
    from prefect.runtime import flow_run

    day = flow_run.parameters.get("day") or (utc_today() - timedelta(days=1))
    return f"daily {day}"


@flow(name="daily", log_prints=False, flow_run_name=daily_run_name)
async def daily_flow(
    day: Annotated[date | None, titled("Day")] = None,
    publish: Annotated[bool, titled("Publish")] = True,
) -> BackfillReport:
    """Ingest one UTC day (default yesterday), build silver, then publish the dataset.

    The publish goes to the Hub when `CRYPTO_PIPELINE_HF_REPO_ID` is set, else to the local
    dataset folder (`CRYPTO_PIPELINE_PUBLISH_DIR`).

    Args:
        day: The UTC day, YYYY-MM-DD (default: yesterday).
        publish: Publish the dataset after silver.
    """
    ctx = run_context()
    target = day or (utc_today() - timedelta(days=1))
    request = Selection(start=target, end=target).resolve(ctx.settings)
    report = await backfill_here(request, ctx)
    failures = list(report.failures)
    if publish:
        await publish_stage(ctx.settings, repo_id=ctx.settings.hf_repo_id, local_dir=None)
    PipelineFailed.raise_for("daily", failures)
    return report
