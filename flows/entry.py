"""Where a flow run starts: the settings it runs with, its context, and where the product's
log lines go.

A deployment's flow run reads the settings from its environment, once, here; the CLI (which
builds them from its options) hands them over with `using_settings` instead. From here down
they are passed, never read again.

Every flow run also sends the log lines of the product's own modules (`clients`, `tasks`,
`storage`, `flows`, `crypto_pipeline`: requests, retries, 429s, skipped symbols, quarantine
counts) to the run's logs in the Prefect UI (`route_product_logs`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from clients.allowance_choice import allowance_backend
from models.settings import Settings, load_settings
from tasks.context import RunContext

_given: ContextVar[Settings | None] = ContextVar("given_settings", default=None)
_contexts: ContextVar[list[RunContext] | None] = ContextVar("run_contexts", default=None)

# The product's module loggers: every package's `logging.getLogger(__name__)` and the
# fallback of `tasks.runtime.run_logger`.
PRODUCT_LOGGERS = ("clients", "tasks", "storage", "flows", "models", "crypto_pipeline")


@contextmanager
def using_settings(settings: Settings, contexts: list[RunContext] | None = None) -> Iterator[None]:
    """Flow runs started in this block (in this process) run with `settings`; the contexts
    they make are appended to `contexts` (their clients' request counts outlive a failed run)."""
    token = _given.set(settings)
    collected = _contexts.set(contexts)
    try:
        yield
    finally:
        _contexts.reset(collected)
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
    route_product_logs()
    settings = run_settings()
    allowance_backend(settings.allowance, fallback_processes=settings.allowance_fallback_processes)
    ctx = RunContext(settings)
    collected = _contexts.get()
    if collected is not None:
        collected.append(ctx)
    return ctx


class RunLogHandler(logging.Handler):
    """Sends a record of the product's loggers to the logs of the flow or task run it was
    emitted in (Prefect's `APILogHandler`); records emitted outside a run are left alone (they
    still reach the console and any handler of the process)."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        from prefect.logging.handlers import APILogHandler

        self._api = APILogHandler()

    def emit(self, record: logging.LogRecord) -> None:
        from prefect.context import FlowRunContext, TaskRunContext

        if getattr(record, "flow_run_id", None) is None and not (
            TaskRunContext.get() or FlowRunContext.get()
        ):
            return
        try:
            self._api.handle(record)
        except Exception:  # never fail the run over a log line
            self.handleError(record)


_handler: RunLogHandler | None = None


def route_product_logs(level: int = logging.INFO) -> RunLogHandler:
    """Attach `RunLogHandler` to the product's loggers (once per process) and let their
    INFO lines through (the console shows them only where its own handlers allow)."""
    global _handler
    if _handler is None:
        _handler = RunLogHandler()
        for name in PRODUCT_LOGGERS:
            logger = logging.getLogger(name)
            logger.addHandler(_handler)
            if logger.level == logging.NOTSET or logger.level > level:
                logger.setLevel(level)
    return _handler
