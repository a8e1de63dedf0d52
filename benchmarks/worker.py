"""One benchmark job in its own process: `python -m benchmarks.worker '<json job>'`.

Prints one JSON line: the job's timings plus the process's own peak RSS. Jobs:

* ``direct``: the backfill (instruments, bronze fetch, silver, aggregates) through the same
  production functions the Prefect tasks wrap, called directly, with the same planning and the
  same task grouping (`flows.bronze.fetch_groups`: an exchange's chunk of days per unit,
  `flows.common.PER_EXCHANGE_CONCURRENCY` units of an exchange at once).
* ``prefect``: the same backfill through `flows.backfill.backfill_flow` (needs PREFECT_API_URL).
* ``ccxt``: the same 1m candle fetch with ccxt's async clients (fetch to a list only).
* ``polite``: the direct backfill with client pacing on, stopped after ``seconds``.
* ``empty-flow``: a flow run that does nothing (Prefect's fixed cost of a run).

Settings (warehouse, sandbox URL, client pacing) come from the environment, as in production.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import re
import resource
import sys
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process so far, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _days(start: str, end: str) -> list[date]:
    first, last = date.fromisoformat(start), date.fromisoformat(end)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


async def direct_bronze(request: Any, settings: Any, warehouse: Any) -> tuple[int, list[str]]:
    """`flows.bronze.run_bronze` minus Prefect: instruments, plan, then `fetch_days` per
    exchange chunk of days (`flows.bronze.fetch_groups`), bounded per exchange."""
    from flows.bronze import fetch_groups
    from flows.common import PER_EXCHANGE_CONCURRENCY, plan
    from flows.listings import has_fresh_snapshot, newest_snapshots
    from models.enums import Layer
    from tasks import bronze

    newest = newest_snapshots(warehouse)
    stale = [e for e in request.exchanges if not has_fresh_snapshot(warehouse, e, newest=newest)]
    if stale:
        await bronze.fetch_all_instruments(
            stale, warehouse_uri=settings.warehouse, sandbox_url=settings.sandbox_url
        )
    gates: dict[Any, asyncio.Semaphore] = defaultdict(
        lambda: asyncio.Semaphore(PER_EXCHANGE_CONCURRENCY)
    )
    groups = fetch_groups(plan(warehouse, Layer.BRONZE, request))
    symbols = {d: list(request.symbols_for(d)) for d in request.datasets}

    async def fetch(exchange: Any, specs: list[Any]) -> Any:
        async with gates[exchange]:
            return await bronze.fetch_days(
                specs,
                symbols,
                warehouse_uri=settings.warehouse,
                sandbox_url=settings.sandbox_url,
            )

    results = await asyncio.gather(*(fetch(e, g) for e, _, g in groups), return_exceptions=True)
    failures = [str(r) for r in results if isinstance(r, BaseException)]
    rows = sum(s.rows for r in results if not isinstance(r, BaseException) for s in r)
    if groups:
        await asyncio.to_thread(warehouse.coverage.compact)
    return rows, failures


async def direct_silver(request: Any, settings: Any, warehouse: Any) -> tuple[int, list[str]]:
    """`flows.silver.build_days` minus Prefect: plan, then `build_days` per chunk of days
    (`chunk_specs`), `TASKS_AT_ONCE` chunks at once."""
    from flows.common import chunk_specs, plan
    from flows.silver import TASKS_AT_ONCE
    from models.enums import Layer
    from tasks.silver_day import SilverDay, SilverDaysFailed, build_days

    chunks = chunk_specs(plan(warehouse, Layer.SILVER, request))
    symbols = {d: list(request.symbols_for(d)) for d in request.datasets}
    gate = asyncio.Semaphore(TASKS_AT_ONCE)

    async def build(days: list[date], specs: list[Any]) -> list[SilverDay]:
        async with gate:
            try:
                return await build_days(
                    days,
                    specs,
                    symbols,
                    list(request.exchanges),
                    warehouse_uri=settings.warehouse,
                )
            except SilverDaysFailed as exc:
                return exc.results

    built = await asyncio.gather(*(build(d, s) for d, s in chunks))
    if chunks:
        await asyncio.to_thread(warehouse.coverage.compact)
    days = [day for chunk in built for day in chunk]
    rows = sum(int(p["rows"]) for day in days for p in day.partitions)
    return rows, [f for day in days for f in day.failures]


async def direct_backfill(job: dict[str, Any]) -> dict[str, Any]:
    """The backfill of `flows.backfill.run_backfill`, minus Prefect: same functions, same order."""
    from models.requests import RunRequest
    from models.settings import load_settings
    from storage import Warehouse
    from tasks.runtime import client_stats, close_clients

    # Import what the backfill uses (Prefect too: the run logger looks for a run context)
    # before timing, as the Prefect job does.
    importlib.import_module("flows.backfill")
    importlib.import_module("tasks.silver_day")
    importlib.import_module("clients.factory")  # aiohttp: the ccxt job imports it untimed too
    importlib.import_module("prefect").get_run_logger  # noqa: B018 - its lazy attribute import

    settings = load_settings()
    chunks = job.get("chunk_days") or 0
    days = _days(job["start"], job["end"])
    step = chunks if chunks > 0 else len(days)
    warehouse = Warehouse(settings.warehouse)
    fetch_s = silver_s = cpu_s = fetch_cpu_s = fetch_loop_cpu_s = 0.0
    bronze_rows = silver_rows = 0
    failures: list[str] = []
    for i in range(0, len(days), step):
        part = days[i : i + step]
        request = RunRequest.build(
            start=part[0],
            end=part[-1],
            settings=settings,
            exchanges=job.get("exchanges"),
            symbols=job.get("symbols"),
            intervals=job.get("intervals", ["1m"]),
            datasets=job.get("datasets", ["ohlcv"]),
        )
        t0, c0, l0 = time.perf_counter(), _cpu_s(), time.thread_time()
        rows, failed = await direct_bronze(request, settings, warehouse)
        bronze_rows += rows
        failures += failed
        t1 = time.perf_counter()
        fetch_cpu_s += _cpu_s() - c0
        fetch_loop_cpu_s += time.thread_time() - l0  # the event loop's own thread
        rows, failed = await direct_silver(request, settings, warehouse)
        silver_rows += rows
        failures += failed
        fetch_s += t1 - t0
        silver_s += time.perf_counter() - t1
        cpu_s += _cpu_s() - c0
    requests = {name: s["requests"] for name, s in client_stats().items()}
    await close_clients()
    return {
        "wall_s": fetch_s + silver_s,
        "cpu_s": cpu_s,
        "fetch_s": fetch_s,
        "silver_s": silver_s,
        "fetch_cpu_s": fetch_cpu_s,
        "fetch_loop_cpu_s": fetch_loop_cpu_s,
        "bronze_rows": bronze_rows,
        "silver_rows": silver_rows,
        "requests": requests,
        "failures": failures[:5],
    }


async def prefect_backfill(job: dict[str, Any]) -> dict[str, Any]:
    # Imports stay outside the timed region, like the direct job's. Prefect imports fastapi's
    # encoders (~0.4 s) lazily on a process's first flow run, to serialize its parameters.
    import fastapi.encoders  # noqa: F401

    import clients.factory  # noqa: F401 - aiohttp: the ccxt job imports it untimed too
    from flows.backfill import backfill_flow
    from models.enums import Dataset, Exchange, Interval

    t0 = time.perf_counter()
    report = await backfill_flow(  # type: ignore[misc]
        start=date.fromisoformat(job["start"]),
        end=date.fromisoformat(job["end"]),
        exchanges=[Exchange(e) for e in job["exchanges"]] if job.get("exchanges") else None,
        symbols=job.get("symbols"),
        intervals=[Interval(i) for i in job.get("intervals", ["1m"])],
        datasets=[Dataset(d) for d in job.get("datasets", ["ohlcv"])],
    )
    wall = time.perf_counter() - t0
    return {
        "wall_s": wall,
        "bronze_rows": report["bronze"]["rows"],
        "silver_rows": report["silver"]["rows"],
        "failures": report["failures"][:5],
    }


# ccxt: exchange id, max candles per page, unified symbol -> ccxt symbol.
CCXT_IDS = {"binance": "binance", "coinbase": "coinbaseexchange", "okx": "okx"}
CCXT_PAGE = {"binance": 1000, "coinbase": 300, "okx": 300}


def _ccxt_symbol(exchange: str, unified: str) -> str:
    base = unified[:-4]
    quote = unified[-4:]
    if exchange == "coinbase" and quote == "USDT":
        quote = "USD"  # the sandbox lists Coinbase's USD books, as the pipeline's resolve does
    return f"{base}/{quote}"


async def ccxt_fetch(job: dict[str, Any]) -> dict[str, Any]:
    """The same 1m candles, fetched with ccxt's async clients pointed at the sandbox."""
    import ccxt.async_support as ccxt_async  # type: ignore[import-untyped]

    sandbox = job["sandbox_url"].rstrip("/")
    days = _days(job["start"], job["end"])
    per_exchange = job.get("concurrency", 20)
    clients: dict[str, Any] = {}
    for name in job["exchanges"]:
        cls = getattr(ccxt_async, CCXT_IDS[name])
        client = cls(
            {
                "enableRateLimit": False,
                "options": {
                    "fetchMarkets": {"types": ["spot"]} if name == "okx" else ["spot"],
                    "fetchCurrencies": False,
                },
            }
        )
        client.has["fetchCurrencies"] = False
        api = client.urls["api"]
        for key, value in list(api.items()):
            if isinstance(value, str):
                api[key] = re.sub(r"^https?://[^/]+", sandbox, value)
        clients[name] = client
    markets_s = 0.0
    t0 = time.perf_counter()
    listed: dict[str, list[str]] = {}
    for name, client in clients.items():
        await client.load_markets()
        listed[name] = [s for s in job["symbols"] if _ccxt_symbol(name, s) in client.markets]
    markets_s = time.perf_counter() - t0

    candles = 0
    requests = 0
    sems = {name: asyncio.Semaphore(per_exchange) for name in clients}

    async def one(name: str, symbol: str, day: date) -> None:
        nonlocal candles, requests
        client = clients[name]
        since = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
        end = since + 86_400_000
        rows: list[list[Any]] = []
        async with sems[name]:
            while since < end:
                page = await client.fetch_ohlcv(
                    _ccxt_symbol(name, symbol), "1m", since=since, limit=CCXT_PAGE[name]
                )
                requests += 1
                page = [r for r in page if r[0] < end]
                if not page:
                    break
                rows.extend(page)
                since = int(page[-1][0]) + 60_000
        candles += len(rows)

    t1, c1 = time.perf_counter(), _cpu_s()
    await asyncio.gather(*(one(name, s, d) for name in clients for s in listed[name] for d in days))
    wall = time.perf_counter() - t1
    cpu = _cpu_s() - c1
    for client in clients.values():
        await client.close()
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "markets_s": markets_s,
        "candles": candles,
        "requests": requests,
        "listed": listed,
    }


async def polite(job: dict[str, Any]) -> dict[str, Any]:
    """Client pacing on, a workload larger than the time allowed; stop after `seconds`."""
    from tasks.runtime import client_stats, close_clients

    try:
        await asyncio.wait_for(direct_backfill(job), timeout=job["seconds"])
        finished = True
    except TimeoutError:
        finished = False
    stats = client_stats()
    await close_clients()
    return {"finished": finished, "client_stats": stats}


async def publish(job: dict[str, Any]) -> dict[str, Any]:
    """The gold publish of everything in silver to the Hub at HF_ENDPOINT (the fake Hub)."""
    from flows.gold import publish_dataset
    from models.settings import load_settings

    settings = load_settings()
    t0 = time.perf_counter()
    report = await asyncio.to_thread(
        publish_dataset,
        settings,
        repo_id=job["repo_id"],
        local_dir=None,
        endpoint=job.get("endpoint"),
    )
    return {
        "wall_s": time.perf_counter() - t0,
        "files": len(report.added) + len(report.changed),
        "unchanged": report.unchanged,
        "bytes": report.bytes_uploaded,
    }


async def empty_flow(job: dict[str, Any]) -> dict[str, Any]:
    """A flow run that does nothing, timed like the backfill: Prefect's fixed cost per run
    (API client and TLS context set-up, creating the run, its state changes)."""
    import fastapi.encoders  # noqa: F401
    from prefect import flow

    @flow(name="bench-empty")
    async def nothing() -> None:
        return None

    t0 = time.perf_counter()
    await nothing()
    return {"wall_s": time.perf_counter() - t0}


JOBS = {
    "empty-flow": empty_flow,
    "publish": publish,
    "direct": direct_backfill,
    "prefect": prefect_backfill,
    "ccxt": ccxt_fetch,
    "polite": polite,
}


def main() -> None:
    job = json.loads(sys.argv[1])
    profile = os.environ.get("BENCH_PROFILE")  # a path: write a pyinstrument report there
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="disabled")
        profiler.start()
    result = asyncio.run(JOBS[job["job"]](job))
    if profile:
        profiler.stop()
        with open(profile, "w") as fh:
            fh.write(profiler.output_text(unicode=False, color=False, show_all=False))
    result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
