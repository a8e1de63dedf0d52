"""A termination signal that Prefect's handler raises inside an event-loop callback is
dropped by asyncio; the runner hands it to the caller instead of hanging."""

from __future__ import annotations

import asyncio
import signal

from prefect.exceptions import TerminationSignal
from rich.console import Console

from flows.runner import run_with_progress


def _raise_in_callback() -> None:
    raise TerminationSignal(signal=signal.SIGTERM)


async def _work_with_interrupted_callback() -> str:
    asyncio.get_running_loop().call_soon(_raise_in_callback)
    await asyncio.sleep(0.05)
    return "finished"


def test_signal_raised_in_a_callback_reaches_the_caller() -> None:
    seen: list[BaseException] = []
    result = run_with_progress(
        _work_with_interrupted_callback,
        title="t",
        console=Console(stderr=True, quiet=True),
        on_lost_signal=seen.append,
    )
    assert result == "finished"  # the test's handler returns; the CLI's ends the process
    assert len(seen) == 1 and isinstance(seen[0], TerminationSignal)


def test_other_callback_errors_keep_asyncio_default_handling() -> None:
    seen: list[BaseException] = []

    async def work() -> str:
        asyncio.get_running_loop().call_soon(lambda: 1 / 0)
        await asyncio.sleep(0.05)
        return "finished"

    assert run_with_progress(work, title="t", on_lost_signal=seen.append) == "finished"
    assert seen == []
