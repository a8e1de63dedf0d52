"""Thin Prefect task shells over the plain functions in `tasks/` (bodies testable via `.fn`)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date
from importlib.metadata import version
from operator import attrgetter
from typing import Any, cast
from uuid import UUID

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.tasks import TaskRunNameCallbackWithParameters, exponential_backoff

from clients.protocol import BadRequest, UnknownSymbol
from models.dates import is_closed
from models.enums import Dataset, Exchange
from models.requests import PartitionSpec
from storage import Warehouse
from tasks import bronze, silver_day

CODE_VERSION = version("crypto-pipeline")
# Tasks without a cache key function use NO_CACHE: Prefect's default policy (inputs + task
# source + run id) would only cache within one run, yet costs a source hash, an input hash and a
# result-store lookup on every task run (most of the per-task overhead on a small partition).


def closed_days_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str | None:
    """Cache key for an exchange's closed days (partitions, symbols, warehouse, code version).

    Only issued while the warehouse's coverage index records every partition complete for
    every symbol, so a cached result never stands in for data the warehouse does not hold (a
    wiped or new warehouse at the same path misses the cache). None (no caching) when any day
    is open, the run is forced or a damaged file is repaired; failed or partial fetches raise,
    so they never complete and are never cached.
    """
    specs: list[PartitionSpec] = parameters["specs"]
    symbols: dict[Dataset, list[str]] = parameters["symbols"]
    if parameters.get("force") or parameters.get("repair"):
        return None
    if not specs or not all(is_closed(spec.day) for spec in specs):
        return None
    warehouse = Warehouse(parameters["warehouse_uri"])
    parts = []
    for spec in sorted(specs, key=lambda s: s.label):
        wanted = sorted(symbols[spec.dataset])
        if set(wanted) - bronze.complete_symbols(warehouse, spec, wanted):
            return None
        parts.append(f"{spec.label}:{','.join(wanted)}")
    raw = f"{context.task.name}|{';'.join(parts)}|{warehouse.uri}|{CODE_VERSION}"
    return hashlib.sha256(raw.encode()).hexdigest()


def day_span(days: Sequence[date]) -> str:
    """`2024-03-04` for one day, `2024-03-04..2024-03-07` for several (first and last)."""
    ordered = sorted(days)
    if len(ordered) <= 1:
        return "".join(map(str, ordered))
    return f"{ordered[0]}..{ordered[-1]}"


# Prefect calls a run-name callable that takes `parameters` with the task run's parameters;
# its protocol type also declares a classmethod, hence the casts below.
def fetch_run_name(parameters: dict[str, Any]) -> str:
    """`fetch binance 2024-03-04`, or `fetch binance 2024-03-04..2024-03-07` for several days."""
    return f"fetch {Exchange(parameters['exchange']).value} {day_span(parameters['days'])}"


def silver_run_name(parameters: dict[str, Any]) -> str:
    """`silver 2024-03-04`, or `silver 2024-03-04..2024-03-07` for several days."""
    return f"silver {day_span(parameters['days'])}"


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
    cache_key_fn=closed_days_cache_key,
    persist_result=True,
    cache_result_in_memory=False,
)
async def fetch_days_task(
    exchange: Exchange,
    days: list[date],
    specs: list[PartitionSpec],
    symbols: dict[Dataset, list[str]],
    warehouse_uri: str,
    sandbox_url: str | None = None,
    force: bool = False,
    repair: list[PartitionSpec] | None = None,
) -> list[dict[str, Any]]:
    """Fetch one exchange's days (every planned dataset and interval, all symbols) into
    bronze, one day after another; the exchange's other tasks run meanwhile."""
    summaries = await bronze.fetch_days(
        specs,
        symbols,
        warehouse_uri=warehouse_uri,
        sandbox_url=sandbox_url,
        force=force,
        repair=repair or [],
    )
    return [s.as_dict() for s in summaries]


def instruments_run_name(parameters: dict[str, Any]) -> str:
    """`instruments binance, okx`: the exchanges whose listings the task snapshots."""
    return "instruments " + ", ".join(e.value for e in parameters["exchanges"])


@task(
    name="fetch-instruments",
    task_run_name=cast(TaskRunNameCallbackWithParameters, instruments_run_name),
    retries=2,
    retry_delay_seconds=5,
    cache_policy=NO_CACHE,
)
async def fetch_instruments_task(
    exchanges: list[Exchange], warehouse_uri: str, sandbox_url: str | None = None
) -> list[dict[str, Any]]:
    """Snapshot every given exchange's listings; raises `InstrumentsFailed` if any failed."""
    summaries = await bronze.fetch_all_instruments(
        exchanges, warehouse_uri=warehouse_uri, sandbox_url=sandbox_url
    )
    return [s.as_dict() for s in summaries]


@task(
    name="build-silver-days",
    task_run_name=cast(TaskRunNameCallbackWithParameters, silver_run_name),
    retries=1,
    retry_delay_seconds=2,
    cache_policy=NO_CACHE,
)
async def build_silver_days_task(
    days: list[date],
    specs: list[PartitionSpec],
    symbols: dict[Dataset, list[str]],
    exchanges: list[Exchange],
    warehouse_uri: str,
    force: bool = False,
) -> list[dict[str, Any]]:
    """Build several days' planned silver partitions and aggregates (days in threads, a few
    at once); raises `SilverDaysFailed` if any day failed. A retry builds only the days that
    raised: the others' results are kept from the earlier attempt."""
    context = TaskRunContext.get()
    run = context.task_run if context else None
    earlier = _SILVER_DAYS_BUILT.pop(run.id, []) if run else []
    built = {r.day for r in earlier}
    try:
        results = await silver_day.build_days(
            [d for d in days if d not in built],
            specs,
            symbols,
            exchanges,
            warehouse_uri=warehouse_uri,
            force=force,
        )
    except silver_day.SilverDaysFailed as exc:
        kept = earlier + [r for r in exc.results if r.day not in exc.raised]
        if run and context and run.run_count <= context.task.retries:  # a retry follows
            _SILVER_DAYS_BUILT[run.id] = kept
        every = sorted(kept + [r for r in exc.results if r.day in exc.raised], key=by_day)
        raise silver_day.SilverDaysFailed(every, exc.raised) from None
    return [r.as_dict() for r in sorted(earlier + results, key=by_day)]


# Days each silver task run has built whole in an earlier attempt, kept (in this process, by
# task run id) only while a retry of that run is still to come.
_SILVER_DAYS_BUILT: dict[UUID, list[silver_day.SilverDay]] = {}

by_day = attrgetter("day")
