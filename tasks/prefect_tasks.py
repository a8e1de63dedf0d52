"""Thin Prefect task shells over the task bodies, and `PrefectUnits`, which runs a stage's
units of work as task runs (retries, run names, the UI's task graph).

No result caching: planning already skips what the coverage index records complete (the
warehouse is the cache), so a cache key could only stand in for data already skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any, cast

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import TaskRunNameCallbackWithParameters, exponential_backoff

from clients.protocol import BadRequest, UnknownSymbol
from models.enums import Dataset, Exchange
from models.partitions import PartitionSpec
from tasks import bronze, silver_day
from tasks.chunks import day_span
from tasks.context import RunContext
from tasks.progress import Progress

# Task run timeouts (a hung unit fails instead of holding the run forever). A fetch unit's is
# `Settings.task_timeout_s` when run through `PrefectUnits`; a listings snapshot is a request
# or two per exchange.
FETCH_TIMEOUT_S = 3600.0
SILVER_TIMEOUT_S = 3600.0
INSTRUMENTS_TIMEOUT_S = 120.0


# Prefect calls a run-name callable that takes `parameters` with the task run's parameters;
# its protocol type also declares a classmethod, hence the casts below.
def fetch_run_name(parameters: dict[str, Any]) -> str:
    """`fetch binance 2024-03-04`, or `fetch binance 2024-03-04..2024-03-07` for several days."""
    return f"fetch {Exchange(parameters['exchange']).value} {day_span(parameters['days'])}"


def silver_run_name(parameters: dict[str, Any]) -> str:
    """`silver 2024-03-04`, or `silver 2024-03-04..2024-03-07` for several days."""
    return f"silver {day_span(parameters['days'])}"


def instruments_run_name(parameters: dict[str, Any]) -> str:
    """`instruments binance, okx`: the exchanges whose listings the task snapshots."""
    return "instruments " + ", ".join(e.value for e in parameters["exchanges"])


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry outages (the clients already retried fast); never client errors."""
    try:
        state.result(_sync=True)
    except bronze.DayFetchFailed as exc:
        return exc.retryable
    except (BadRequest, UnknownSymbol):
        return False
    except Exception:
        return True
    return False


@task(
    name="fetch-days",
    task_run_name=cast(TaskRunNameCallbackWithParameters, fetch_run_name),
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_transient,
    timeout_seconds=FETCH_TIMEOUT_S,
    cache_policy=NO_CACHE,
)
async def fetch_days_task(
    exchange: Exchange,
    days: list[date],
    specs: list[PartitionSpec],
    symbols: dict[Dataset, list[str]],
    ctx: RunContext,
    force: bool = False,
    repair: list[PartitionSpec] | None = None,
    progress: Progress | None = None,
) -> list[bronze.FetchSummary]:
    """Fetch one exchange's days (every planned dataset and interval, all symbols) into
    bronze; the exchange's other tasks run meanwhile."""
    return await bronze.fetch_days(
        specs, symbols, ctx=ctx, force=force, repair=repair or [], progress=progress
    )


@task(
    name="fetch-instruments",
    task_run_name=cast(TaskRunNameCallbackWithParameters, instruments_run_name),
    retries=1,
    retry_delay_seconds=3,
    timeout_seconds=INSTRUMENTS_TIMEOUT_S,
    cache_policy=NO_CACHE,
)
async def fetch_instruments_task(
    exchanges: list[Exchange], ctx: RunContext
) -> list[bronze.FetchSummary]:
    """Snapshot every given exchange's listings; raises `InstrumentsFailed` if any failed."""
    return await bronze.fetch_all_instruments(exchanges, ctx=ctx)


@task(
    name="build-silver-days",
    task_run_name=cast(TaskRunNameCallbackWithParameters, silver_run_name),
    timeout_seconds=SILVER_TIMEOUT_S,
    cache_policy=NO_CACHE,
)
async def build_silver_days_task(
    days: list[date],
    specs: list[PartitionSpec],
    symbols: dict[Dataset, list[str]],
    ctx: RunContext,
    force: bool = False,
    progress: Progress | None = None,
) -> list[silver_day.SilverDay]:
    """Build several days' planned silver partitions and aggregates; raises
    `SilverDaysFailed` if any day failed (the silver stage builds those days again)."""
    return await silver_day.build_days(
        days, specs, symbols, ctx=ctx, force=force, progress=progress
    )


class PrefectUnits:
    """Runs each unit of work as a Prefect task run; fetches retry per the settings."""

    async def fetch_instruments(
        self, exchanges: Sequence[Exchange], ctx: RunContext
    ) -> list[bronze.FetchSummary]:
        return await fetch_instruments_task(list(exchanges), ctx)

    async def fetch_days(
        self,
        exchange: Exchange,
        days: Sequence[date],
        specs: Sequence[PartitionSpec],
        symbols: Mapping[Dataset, Sequence[str]],
        ctx: RunContext,
        *,
        force: bool,
        repair: Sequence[PartitionSpec],
        progress: Progress | None,
    ) -> list[bronze.FetchSummary]:
        settings = ctx.settings
        fetch = fetch_days_task.with_options(
            timeout_seconds=settings.task_timeout_s,
            retries=settings.task_retries,
            retry_delay_seconds=[
                settings.task_retry_delay_s * 3**i for i in range(settings.task_retries)
            ],
        )
        return await fetch(
            exchange,
            list(days),
            list(specs),
            {d: list(s) for d, s in symbols.items()},
            ctx,
            force,
            list(repair),
            progress,
        )

    async def build_silver_days(
        self,
        days: Sequence[date],
        specs: Sequence[PartitionSpec],
        symbols: Mapping[Dataset, Sequence[str]],
        ctx: RunContext,
        *,
        force: bool,
        progress: Progress | None,
    ) -> list[silver_day.SilverDay]:
        build = build_silver_days_task.with_options(timeout_seconds=ctx.settings.task_timeout_s)
        return await build(
            list(days),
            list(specs),
            {d: list(s) for d, s in symbols.items()},
            ctx,
            force,
            progress,
        )


PREFECT = PrefectUnits()
