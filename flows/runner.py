"""Run a flow in this process with rich progress bars fed by `flows.progress`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tasks import progress as hub


def run_with_progress(
    factory: Callable[[], Awaitable[Any]], *, title: str, console: Console | None = None
) -> Any:
    """Run `factory()` to completion, drawing one bar per stage; returns its result."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        console = Console(stderr=True, width=120)
    started = time.monotonic()
    bars = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    ids: dict[str, Any] = {}

    def update(p: hub.Progress) -> None:
        if p.stage not in ids:
            ids[p.stage] = bars.add_task(f"{title}: {p.stage}", total=max(p.total, 1), detail="")
        elapsed = max(time.monotonic() - started, 1e-6)
        detail = f"requests {p.requests:,} ({p.requests / elapsed:,.0f}/s)" if p.requests else ""
        if p.rows:
            detail += f" rows {p.rows:,}"
        if p.failed:
            detail += f" [red]failed {p.failed}[/red]"
        bars.update(
            ids[p.stage], total=max(p.total, 1), completed=p.done if p.total else 1, detail=detail
        )

    async def main() -> Any:
        return await factory()

    unsubscribe = hub.subscribe(update)
    try:
        with bars:
            return asyncio.run(main())
    finally:
        unsubscribe()
