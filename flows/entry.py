"""Where a flow run starts: the settings it runs with and its context.

A deployment's flow run reads the settings from its environment, once, here; the CLI (which
builds them from its options) hands them over with `using_settings` instead. From here down
they are passed, never read again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from clients.allowance_choice import allowance_backend
from models.settings import Settings, load_settings
from tasks.context import RunContext

_given: ContextVar[Settings | None] = ContextVar("given_settings", default=None)


@contextmanager
def using_settings(settings: Settings) -> Iterator[None]:
    """Flow runs started in this block (in this process) run with `settings`."""
    token = _given.set(settings)
    try:
        yield
    finally:
        _given.reset(token)


def run_settings() -> Settings:
    """The settings handed over by the caller, else those of the environment."""
    return _given.get() or load_settings()


def run_context() -> RunContext:
    """A context for a flow run: its settings and warehouse.

    The exchanges' allowance backend is built here, before any work: a configured Redis that
    is down fails the run at once with `AllowanceUnavailable`, one line naming the setting
    and the address (or, with `CRYPTO_PIPELINE_ALLOWANCE_FALLBACK_PROCESSES`, runs on the
    logged `local/N` fallback), never part-way through its tasks.
    """
    settings = run_settings()
    allowance_backend(settings.allowance, fallback_processes=settings.allowance_fallback_processes)
    return RunContext(settings)
