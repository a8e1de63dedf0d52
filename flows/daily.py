"""Daily flow: one UTC date (default yesterday) through bronze, silver and gold."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from prefect import flow

from flows.backfill import run_backfill
from flows.common import PipelineFailed
from flows.gold import run_gold
from models.dates import utc_today
from models.requests import RunRequest
from models.settings import load_settings


@flow(name="daily", log_prints=False)
async def daily_flow(day: date | None = None, publish: bool = True) -> dict[str, Any]:
    """Ingest one UTC day (default yesterday), build silver, then publish the dataset.

    The publish goes to the Hub when `CRYPTO_PIPELINE_HF_REPO_ID` is set, else to the local
    dataset folder (`CRYPTO_PIPELINE_PUBLISH_DIR`).
    """
    settings = load_settings()
    target = day or (utc_today() - timedelta(days=1))
    request = RunRequest.build(start=target, end=target, settings=settings)
    report = await run_backfill(request, settings)
    if publish:
        report["gold"] = await run_gold(settings, repo_id=settings.hf_repo_id, local_dir=None)
        report["failures"] += report["gold"].get("failures", [])
    PipelineFailed.raise_for("daily", report)
    return report
