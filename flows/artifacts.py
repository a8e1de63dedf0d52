"""Artifacts people read in the Prefect UI: rows per partition, quality, moving progress."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact

from tasks import progress as channel
from tasks.bronze import FetchSummary
from tasks.silver_partition import SilverSummary

# Seconds between updates of a progress artifact (each is an API call).
PROGRESS_EVERY_S = 2.0


@asynccontextmanager
async def progress_artifact(stage: str, description: str) -> AsyncIterator[None]:
    """A progress artifact `{stage}-progress` that follows the stage's progress while the
    block runs (created once the stage knows it has work, updated every few seconds)."""
    latest: dict[str, channel.Progress] = {}

    def seen(progress: channel.Progress) -> None:
        if progress.stage == stage:
            latest[stage] = progress

    artifact: UUID | None = None
    shown = -1.0

    async def show() -> None:
        nonlocal artifact, shown
        progress = latest.get(stage)
        if progress is None or not progress.total:
            return
        percent = round(100.0 * progress.done / progress.total, 1)
        if artifact is None:
            artifact = await acreate_progress_artifact(
                percent, key=f"{stage}-progress", description=description
            )
        elif percent != shown:
            await aupdate_progress_artifact(artifact, percent)
        shown = percent

    async def follow() -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            await show()

    unsubscribe = channel.subscribe(seen)
    follower = asyncio.create_task(follow())
    try:
        yield
    finally:
        follower.cancel()
        unsubscribe()
        await show()


def fetch_rows(summaries: Sequence[FetchSummary]) -> list[dict[str, Any]]:
    """Rows for a table artifact: one per bronze partition, small and readable."""
    rows = [
        {
            "partition": s.partition,
            "rows": s.rows,
            "not_listed": ", ".join(s.symbols_not_listed),
            "failed": ", ".join(sorted(s.failures)),
        }
        for s in summaries
    ]
    return sorted(rows, key=lambda r: str(r["partition"]))


def quality_markdown(
    summaries: Sequence[SilverSummary], failures: Sequence[str], title: str
) -> str:
    """A short silver quality summary for people reading the run in the UI."""
    lines = [
        f"# Silver quality: {title}",
        "",
        f"- partitions built: {len(summaries)}",
        f"- rows: {sum(s.rows for s in summaries):,}",
        f"- quarantined rows: {sum(s.quarantined for s in summaries):,}",
        f"- gaps: {sum(s.gaps for s in summaries)} "
        f"({sum(s.gap_minutes for s in summaries):,.0f} minutes missing on the expected grid)",
        f"- failed partitions: {len(failures)}",
    ]
    lines += [f"  - {f}" for f in failures]
    worst = [s for s in sorted(summaries, key=lambda s: -s.gap_minutes)[:10] if s.gap_minutes > 0]
    if worst:
        lines += ["", "## Largest gaps", "", "| partition | gaps | minutes |", "|---|---|---|"]
        lines += [f"| {s.partition} | {s.gaps} | {s.gap_minutes:.0f} |" for s in worst]
    return "\n".join(lines)
