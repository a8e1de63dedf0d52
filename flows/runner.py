"""Run a flow in this process with rich progress bars fed by `flows.progress`; the tags of
the CLI's runs, and the runs a dead CLI process left RUNNING marked Crashed."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tasks import progress as hub


def run_with_progress(
    factory: Callable[[], Awaitable[Any]],
    *,
    title: str,
    console: Console | None = None,
    on_lost_signal: Callable[[BaseException], None] | None = None,
) -> Any:
    """Run `factory()` to completion, drawing one bar per stage; returns its result.

    Prefect's SIGTERM handler raises `TerminationSignal` wherever the main thread is; when
    that is inside an event-loop callback, asyncio logs the exception and drops it, and the
    interrupted task never resumes. `on_lost_signal` is then called with it (to end the
    process); without one, asyncio's default handling applies."""
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
        if on_lost_signal is not None:
            _catch_lost_signals(asyncio.get_running_loop(), on_lost_signal)
        return await factory()

    unsubscribe = hub.subscribe(update)
    try:
        with bars:
            return asyncio.run(main())
    finally:
        unsubscribe()


def _catch_lost_signals(
    loop: asyncio.AbstractEventLoop, on_lost_signal: Callable[[BaseException], None]
) -> None:
    from prefect.exceptions import ExternalSignal

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if isinstance(error, ExternalSignal):
            on_lost_signal(error)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)


# -- runs left RUNNING by a process that died ---------------------------------------------------

# Every flow run the CLI starts carries CLI_TAG and a tag naming its process
# (`cli-process:HOST:PID:START`, START being the process's start time in clock ticks since
# boot, so a reused PID is not taken for the dead process).
CLI_TAG = "crypto-pipeline-cli"
PROCESS_TAG = "cli-process:"


def _start_ticks(pid: int) -> str:
    """The process's start time (field 22 of /proc/PID/stat); '' where /proc is missing or
    the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def process_tag(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{PROCESS_TAG}{socket.gethostname()}:{pid}:{_start_ticks(pid)}"


def _process_is_gone(tag: str) -> bool:
    """Whether the process a tag names ran on this host and no longer runs."""
    try:
        host, pid_text, ticks = tag.removeprefix(PROCESS_TAG).rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return False  # another machine's run: not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive (another user's)
    return bool(ticks) and _start_ticks(pid) not in ("", ticks)  # PID reused by another process


@contextmanager
def run_tags() -> Iterator[None]:
    """Flow runs started in this block carry the CLI's tags (see `mark_orphans_crashed`)."""
    from prefect import tags

    with tags(CLI_TAG, process_tag()):
        yield


def _unfinished() -> list[Any]:
    from prefect.client.schemas.objects import StateType

    return [StateType.RUNNING, StateType.PENDING]


async def _unfinished_runs(client: Any, tags: list[str]) -> list[Any]:
    """The flow runs RUNNING or PENDING that carry every one of `tags`."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )

    return list(
        await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=tags),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=_unfinished())),
            ),
            limit=200,
        )
    )


async def orphaned_runs_crashed() -> list[str]:
    """Mark Crashed the flow runs (and their unfinished task runs) that a CLI process of this
    host left RUNNING or PENDING when it died (SIGKILL, power loss): Prefect marks a run
    Crashed when its process survives the failure, and for runs of workers and `serve` it
    has heartbeats, but an in-process run whose process died stays RUNNING forever.
    Returns the names of the runs marked."""
    from prefect import get_client

    marked: list[str] = []
    async with get_client() as client:
        for run in await _unfinished_runs(client, [CLI_TAG]):
            tag = next((t for t in run.tags if t.startswith(PROCESS_TAG)), None)
            if tag is None or not _process_is_gone(tag):
                continue
            message = f"the CLI process that ran it ({tag.removeprefix(PROCESS_TAG)}) died"
            await _crash(client, run.id, message)
            marked.append(run.name)
    return marked


async def own_runs_crashed(message: str) -> list[str]:
    """Mark Crashed the unfinished flow runs (and their task runs) of this process, for a
    process about to end on a signal whose graceful path was lost. Returns their names."""
    from prefect import get_client

    marked: list[str] = []
    async with get_client() as client:
        for run in await _unfinished_runs(client, [CLI_TAG, process_tag()]):
            await _crash(client, run.id, message)
            marked.append(run.name)
    return marked


async def _crash(client: Any, flow_run_id: Any, message: str) -> None:
    """Mark one flow run and its unfinished task runs Crashed."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.states import Crashed

    tasks = await client.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
        task_run_filter=TaskRunFilter(
            state=TaskRunFilterState(type=TaskRunFilterStateType(any_=_unfinished()))
        ),
    )
    for task_run in tasks:
        await client.set_task_run_state(task_run.id, Crashed(message=message), force=True)
    await client.set_flow_run_state(flow_run_id, Crashed(message=message), force=True)


def mark_orphans_crashed(console: Console) -> None:
    """`orphaned_runs_crashed`, with a notice naming each run marked."""
    for name in asyncio.run(orphaned_runs_crashed()):
        console.print(
            f"[yellow]notice:[/yellow] flow run {name!r} was left running by a dead "
            "process; marked Crashed"
        )
