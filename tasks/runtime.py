"""Process-wide runtime helpers for task bodies: the settled heap, gates shared by every run of
the process, the run logger."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import weakref
from typing import Any

_heap_settled = False


def settle_heap() -> None:
    """Once per process, before the data work: take every object alive now (modules, classes,
    settings: what imports and start-up made, ~170k in a flow run) out of the cyclic garbage
    collector's scans (`gc.freeze`).

    Decoding pages allocates enough containers to trigger full collections mid-run, and each
    one rescanned that whole start-up heap while holding the GIL (~0.1 s each, 0.23-0.27 s of
    a two-week backfill). Objects made later are collected as usual.
    """
    global _heap_settled
    if not _heap_settled:
        _heap_settled = True
        gc.freeze()


_gates: dict[tuple[str, int], tuple[weakref.ref[asyncio.AbstractEventLoop], asyncio.Semaphore]] = {}


def shared_gate(name: str, size: int) -> asyncio.Semaphore:
    """One semaphore per name and event loop, shared by every task of the process: bounds
    work across tasks (e.g. days of one exchange fetched at once, whichever task holds them).
    The first caller's `size` sets it."""
    loop = asyncio.get_running_loop()
    key = (name, id(loop))
    found = _gates.get(key)
    if found is None or found[0]() is not loop:  # new, or an id reused by a later loop
        found = _gates[key] = (weakref.ref(loop), asyncio.Semaphore(size))
    return found[1]


def run_logger() -> logging.Logger | logging.LoggerAdapter[Any]:
    """Prefect's run logger inside a run, a module logger outside one. A process that has not
    imported Prefect is in no run: it is not imported for the question (~1.7 s of CPU)."""
    if "prefect" not in sys.modules:
        return logging.getLogger("crypto_pipeline")
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:
        return logging.getLogger("crypto_pipeline")
