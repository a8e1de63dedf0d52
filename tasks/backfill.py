"""A backfill in this process: bronze then silver over one request."""

from __future__ import annotations

from models.selection import RunRequest
from tasks.bronze_stage import run_bronze
from tasks.context import RunContext
from tasks.reports import BackfillReport
from tasks.silver_stage import run_silver
from tasks.units import DIRECT, Units


async def run_backfill(
    request: RunRequest, ctx: RunContext, units: Units = DIRECT
) -> BackfillReport:
    """Bronze then silver for the whole request; failures are collected, never raised."""
    bronze = await run_bronze(request, ctx, units)
    silver = await run_silver(request, ctx, units)
    return BackfillReport(days=len(request.days), bronze=bronze, silver=silver)
