"""Process-wide runtime helpers for tasks: shared exchange clients, gates, the run logger."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from clients.protocol import ExchangeClient
from models.enums import Exchange

_clients: dict[tuple[Exchange, str | None, int], ExchangeClient] = {}
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


def shared_client(exchange: Exchange, sandbox_url: str | None) -> ExchangeClient:
    """One client (one aiohttp session) per exchange and event loop, shared by all tasks."""
    from clients.factory import make_client
    from models.settings import load_settings

    key = (exchange, sandbox_url, id(asyncio.get_running_loop()))
    client = _clients.get(key)
    if client is None:
        settings = load_settings()
        client = make_client(
            exchange,
            sandbox_url=sandbox_url,
            rate_limits=settings.client_rate_limits,
            rate_limit_scale=settings.rate_limit_scale,
        )
        _clients[key] = client
    return client


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


# Who to tell, in this process, that partitions finished: set by a flow around its tasks, seen
# by the task bodies it starts (a context variable: concurrent runs each see their own).
_partitions_done: ContextVar[Callable[[int], None] | None] = ContextVar(
    "partitions_done", default=None
)


@contextmanager
def reporting_progress(callback: Callable[[int], None]) -> Iterator[None]:
    """Within the block (and the tasks started in it), `partitions_done(n)` calls `callback`."""
    token = _partitions_done.set(callback)
    try:
        yield
    finally:
        _partitions_done.reset(token)


def partitions_done(count: int) -> None:
    """Report `count` partitions finished (written or failed) to the run that started them,
    if it listens; a task reports each day as it ends rather than all of them at its end."""
    callback = _partitions_done.get()
    if callback is not None:
        callback(count)


def client_stats() -> dict[str, dict[str, int]]:
    """Request counters of the shared clients of the running loop, per exchange."""
    loop_id = id(asyncio.get_running_loop())
    out: dict[str, dict[str, int]] = {}
    for (exchange, _, lid), client in _clients.items():
        if lid == loop_id:
            s = client.stats
            row = out.setdefault(exchange.value, {"requests": 0, "retries": 0, "rate_limited": 0})
            row["requests"] += s.requests
            row["retries"] += s.retries
            row["rate_limited"] += s.rate_limited
    return out


async def close_clients() -> None:
    """Close the shared clients of the running loop."""
    loop_id = id(asyncio.get_running_loop())
    for key in [k for k in _clients if k[2] == loop_id]:
        await _clients.pop(key).aclose()
    for gate_key in [k for k in _gates if k[1] == loop_id]:
        del _gates[gate_key]


def run_logger() -> logging.Logger | logging.LoggerAdapter[Any]:
    """Prefect's run logger inside a run, a module logger outside one."""
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:
        return logging.getLogger("crypto_pipeline")
