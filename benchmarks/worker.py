"""One benchmark job in its own process: `python -m benchmarks.worker '<json job>'`.

Prints one JSON line: the job's timings plus the process's own peak RSS. Jobs:

* ``direct``: the backfill (instruments, bronze fetch, silver, aggregates) through the
  pipeline's own stages (`tasks.bronze_stage.run_bronze`, `tasks.silver_stage.run_silver`)
  with their units of work run in this process instead of as Prefect task runs.
* ``prefect``: the same backfill through `flows.backfill.backfill_flow` (needs PREFECT_API_URL).
* ``ccxt``: the same 1m candle fetch with ccxt's async clients (fetch to a list only); with
  ``"store": true`` also writing the rows to Parquet per exchange and day via Arrow, as a
  ccxt-based downloader stores them (one file per exchange and day with all symbols).
* ``rerun``: the direct backfill of a range the warehouse already holds complete (timed from
  the first stage call, like ``direct``; nothing to fetch or build).
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


async def direct_backfill(job: dict[str, Any], ctx: Any = None) -> dict[str, Any]:
    """The backfill of `flows.backfill`, minus Prefect: the same stages (`run_bronze`, then
    `run_silver`) with their units run directly, timed apart; in chunks of `chunk_days`."""
    from models.selection import Selection
    from models.settings import load_settings
    from tasks.bronze_stage import run_bronze
    from tasks.context import RunContext
    from tasks.silver_stage import run_silver

    # Import what the backfill uses (Prefect too: the run logger looks for a run context)
    # before timing, as the Prefect job does.
    importlib.import_module("flows.backfill")
    importlib.import_module("tasks.silver_day")
    importlib.import_module("clients.factory")  # aiohttp: the ccxt job imports it untimed too
    importlib.import_module("prefect").get_run_logger  # noqa: B018 - its lazy attribute import

    ctx = ctx or RunContext(load_settings())
    chunks = job.get("chunk_days") or 0
    days = _days(job["start"], job["end"])
    step = chunks if chunks > 0 else len(days)
    fetch_s = silver_s = cpu_s = fetch_cpu_s = fetch_loop_cpu_s = 0.0
    bronze_rows = silver_rows = 0
    failures: list[str] = []
    for i in range(0, len(days), step):
        part = days[i : i + step]
        request = Selection(
            start=part[0],
            end=part[-1],
            exchanges=job.get("exchanges"),
            symbols=job.get("symbols"),
            intervals=job.get("intervals", ["1m"]),
            datasets=job.get("datasets", ["ohlcv"]),
        ).resolve(ctx.settings)
        t0, c0, l0 = time.perf_counter(), _cpu_s(), time.thread_time()
        bronze = await run_bronze(request, ctx)
        bronze_rows += bronze.rows
        failures += bronze.failures
        t1 = time.perf_counter()
        fetch_cpu_s += _cpu_s() - c0
        fetch_loop_cpu_s += time.thread_time() - l0  # the event loop's own thread
        silver = await run_silver(bronze.request or request, ctx)
        silver_rows += silver.rows
        failures += silver.failures
        fetch_s += t1 - t0
        silver_s += time.perf_counter() - t1
        cpu_s += _cpu_s() - c0
    requests = {name: s["requests"] for name, s in ctx.client_stats().items()}
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
        "failures_total": len(failures),
    }


async def prefect_backfill(job: dict[str, Any]) -> dict[str, Any]:
    # Imports stay outside the timed region, like the direct job's. Prefect imports fastapi's
    # encoders (~0.4 s) lazily on a process's first flow run, to serialize its parameters.
    import fastapi.encoders  # noqa: F401

    import clients.factory  # noqa: F401 - aiohttp: the ccxt job imports it untimed too
    from flows.backfill import backfill_flow
    from models.selection import Selection

    selection = Selection(
        start=job["start"],
        end=job["end"],
        exchanges=job.get("exchanges"),
        symbols=job.get("symbols"),
        intervals=job.get("intervals", ["1m"]),
        datasets=job.get("datasets", ["ohlcv"]),
    )
    t0 = time.perf_counter()
    report = await backfill_flow(selection)
    wall = time.perf_counter() - t0
    return {
        "wall_s": wall,
        "bronze_rows": report.bronze.rows if report.bronze else 0,
        "silver_rows": report.silver.rows if report.silver else 0,
        "failures": report.failures[:5],
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


def _ccxt_table(rows_by_symbol: dict[str, list[list[Any]]]) -> Any:
    """ccxt rows ([ms, o, h, l, c, v]) of several symbols as one Arrow table, sorted by symbol
    then time: one typed column per field, built from the rows with `zip`."""
    import pyarrow as pa

    symbols: list[str] = []
    columns: list[list[Any]] = [[], [], [], [], [], []]
    for symbol in sorted(rows_by_symbol):
        rows = rows_by_symbol[symbol]
        if not rows:
            continue
        symbols.extend([symbol] * len(rows))
        for column, values in zip(columns, zip(*rows, strict=True), strict=True):
            column.extend(values)
    ts, o, h, low, c, v = columns
    return pa.table(
        {
            "symbol": pa.array(symbols, pa.string()),
            "ts": pa.array(ts, pa.int64()).cast(pa.timestamp("ms", "UTC")),
            "open": pa.array(o, pa.float64()),
            "high": pa.array(h, pa.float64()),
            "low": pa.array(low, pa.float64()),
            "close": pa.array(c, pa.float64()),
            "volume": pa.array(v, pa.float64()),
        }
    )


def _ccxt_write(path: str, rows_by_symbol: dict[str, list[list[Any]]]) -> int:
    """One exchange's day to Parquet (pyarrow's default snappy; a dictionary for the symbol
    only), in a worker thread; returns the rows written."""
    import pyarrow.parquet as pq

    table = _ccxt_table(rows_by_symbol)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(table, path, use_dictionary=["symbol"])
    return int(table.num_rows)


async def ccxt_fetch(job: dict[str, Any]) -> dict[str, Any]:
    """The same 1m candles, fetched with ccxt's async clients pointed at the sandbox.

    With `store`, each exchange's day (all symbols) is written to Parquet under `out_dir` as
    soon as its last symbol is fetched, in a thread, while the other fetches go on.
    """
    import ccxt.async_support as ccxt_async  # type: ignore[import-untyped]
    import pyarrow.parquet  # noqa: F401 - imported untimed, like the pipeline's

    sandbox = job["sandbox_url"].rstrip("/")
    days = _days(job["start"], job["end"])
    per_exchange = job.get("concurrency", 20)
    store = bool(job.get("store"))
    out_dir = job.get("out_dir") or ""
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
    stored = 0
    sems = {name: asyncio.Semaphore(per_exchange) for name in clients}

    async def one(name: str, symbol: str, day: date) -> list[list[Any]]:
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
        return rows

    async def exchange_day(name: str, day: date) -> None:
        nonlocal stored
        fetched = await asyncio.gather(*(one(name, s, day) for s in listed[name]))
        if store:
            path = os.path.join(out_dir, name, f"{day.isoformat()}.parquet")
            rows_by_symbol = dict(zip(listed[name], fetched, strict=True))
            written = await asyncio.to_thread(_ccxt_write, path, rows_by_symbol)
            stored += written

    t1, c1 = time.perf_counter(), _cpu_s()
    await asyncio.gather(*(exchange_day(name, d) for name in clients for d in days))
    wall = time.perf_counter() - t1
    cpu = _cpu_s() - c1
    for client in clients.values():
        await client.close()
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "markets_s": markets_s,
        "candles": candles,
        "stored_rows": stored,
        "requests": requests,
        "listed": listed,
    }


async def polite(job: dict[str, Any]) -> dict[str, Any]:
    """Client pacing on, a workload larger than the time allowed; stop after `seconds`."""
    from models.settings import load_settings
    from tasks.context import RunContext

    ctx = RunContext(load_settings())
    try:
        await asyncio.wait_for(direct_backfill(job, ctx), timeout=job["seconds"])
        finished = True
    except TimeoutError:
        finished = False
    await ctx.aclose()
    return {"finished": finished, "client_stats": ctx.client_stats()}


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
