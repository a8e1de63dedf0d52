"""Benchmarks: speed, overhead, memory and politeness, side by side with ccxt.

    python -m benchmarks.run --quick   # a few minutes; the last line is one JSON object
    python -m benchmarks.run --full    # adds a year of 1m candles, scaling and the Hub publish
    python -m benchmarks.run --fetch-only  # the quick throughput section alone

One JSON object holds every figure: the sections of this module, the shared allowance
(`benchmarks.shared_allowance`), the archive path (`benchmarks.archive`, `archive_*` keys) and,
in the full run, the scale in symbols (`benchmarks.scale`, `scale_*` keys).

Every backfill runs in its own worker process (`benchmarks.worker`) against a sandbox exchange
served from this process, so the figures include real HTTP, JSON decoding and Parquet writes, and
each worker's peak RSS is its own. Figures are medians over the repeats.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

from benchmarks.common import (
    BENCH_START,
    EXCHANGES,
    SYMBOLS,
    machine,
    median,
    prefect_database,
    prefect_server,
    process_cpu_s,
    run_benchmark,
    run_worker,
    say,
)
from benchmarks.shared_allowance import shared_allowance
from sandbox import SandboxConfig, SandboxServer

RATE_LIMIT_SCALE = 0.2  # the politeness run: every allowance x0.2, windows unchanged


def _end(start: str, days: int) -> str:
    return (date.fromisoformat(start) + timedelta(days=days - 1)).isoformat()


def _cpu_self() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


@contextmanager
def scratch() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="bench-warehouse-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _env(warehouse: str, sandbox: str, **extra: str) -> dict[str, str]:
    """A job's settings. Binance is read through REST, as ccxt reads it: the comparisons are
    like for like and the politeness run measures the REST allowance (the archive path, which
    `source=auto` takes for closed months, has its own benchmark, `benchmarks.archive`)."""
    return {
        "CRYPTO_PIPELINE_WAREHOUSE": warehouse,
        "CRYPTO_PIPELINE_SANDBOX_URL": sandbox,
        "CRYPTO_PIPELINE_BINANCE_SOURCE": "rest",
        "CRYPTO_PIPELINE_CLIENT_RATE_LIMITS": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        **extra,
    }


def _job(kind: str, days: int, *, start: str = BENCH_START, **extra: Any) -> dict[str, Any]:
    return {
        "job": kind,
        "start": start,
        "end": _end(start, days),
        "symbols": SYMBOLS,
        "exchanges": EXCHANGES,
        **extra,
    }


def _us_per(runs: list[dict[str, Any]], count: str) -> float:
    """Median CPU microseconds per counted item over the runs."""
    return round(median([r["cpu_s"] / r[count] for r in runs]) * 1e6, 2)


def _requests(server: SandboxServer) -> int:
    return sum(int(s["requests"]) for s in server.stats().values())


def run_direct(
    server: SandboxServer, job: dict[str, Any], warehouse: str | None = None
) -> dict[str, Any]:
    """One direct backfill in a worker; adds the sandbox's CPU seconds and request count."""
    with scratch() as fresh:
        cpu0, req0 = _cpu_self(), _requests(server)
        result = run_worker(job, _env(warehouse or fresh, server.url))
        result["sandbox_cpu_s"] = _cpu_self() - cpu0
        result["sandbox_requests"] = _requests(server) - req0
        return result


# ----------------------------------------------------------------------------- sections


def throughput(server: SandboxServer, days: int, repeats: int) -> dict[str, Any]:
    """Sandbox HTTP -> bronze -> silver Parquet (1m candles, limits off) vs ccxt's fetch.

    One untimed run first warms the sandbox's generated pages, so neither side pays for the
    sandbox generating a day the first time (a real exchange serves history from storage).
    """
    warm = run_direct(server, _job("direct", days))
    say(
        f"  warm-up: {warm['sandbox_requests']} requests, sandbox CPU {warm['sandbox_cpu_s']:.2f} s"
    )
    ours, theirs, stored = [], [], []
    for i in range(repeats):
        r = run_direct(server, _job("direct", days))
        ours.append(r)
        say(
            f"  pipeline run {i + 1}: {r['silver_rows']:,} candles in {r['wall_s']:.2f} s "
            f"(fetch {r['fetch_s']:.2f} s on {r['fetch_cpu_s'] / r['fetch_s']:.2f} cores, "
            f"loop thread {r['fetch_loop_cpu_s'] / r['fetch_s']:.0%} busy; "
            f"silver {r['silver_s']:.2f} s, "
            f"{r['sandbox_requests']} requests, CPU {r['cpu_s']:.2f} s, "
            f"sandbox CPU {r['sandbox_cpu_s']:.2f} s, "
            f"peak RSS {r['peak_rss_mb']:.0f} MB)"
        )
        cpu0 = _cpu_self()
        c = run_worker(_job("ccxt", days, sandbox_url=server.url))
        c["sandbox_cpu_s"] = _cpu_self() - cpu0
        theirs.append(c)
        say(
            f"  ccxt run {i + 1}: {c['candles']:,} candles in {c['wall_s']:.2f} s "
            f"({c['requests']} requests, CPU {c['cpu_s']:.2f} s, "
            f"sandbox CPU {c['sandbox_cpu_s']:.2f} s)"
        )
        with scratch() as out_dir:
            cs = run_worker(_job("ccxt", days, sandbox_url=server.url, store=True, out_dir=out_dir))
        stored.append(cs)
        say(
            f"  ccxt + Parquet run {i + 1}: {cs['stored_rows']:,} candles stored in "
            f"{cs['wall_s']:.2f} s (CPU {cs['cpu_s']:.2f} s)"
        )
    rate = median([r["silver_rows"] / r["wall_s"] for r in ours])
    fetch_rate = median([r["bronze_rows"] / r["fetch_s"] for r in ours])
    ccxt_rate = median([c["candles"] / c["wall_s"] for c in theirs])
    ccxt_store_rate = median([c["stored_rows"] / c["wall_s"] for c in stored])
    return {
        "days": days,
        "candles": ours[-1]["silver_rows"],
        "throughput_candles_per_s": round(rate),
        "fetch_only_candles_per_s": round(fetch_rate),
        "ccxt_candles_per_s": round(ccxt_rate),
        "speedup_vs_ccxt": round(rate / ccxt_rate, 2),
        "fetch_speedup_vs_ccxt": round(fetch_rate / ccxt_rate, 2),
        # like for like: sandbox HTTP -> Parquet per exchange and day on both sides
        "ccxt_store_candles_per_s": round(ccxt_store_rate),
        "fetch_store_speedup_vs_ccxt": round(fetch_rate / ccxt_store_rate, 2),
        "fetch_store_speedup_runs": [
            round((r["bronze_rows"] / r["fetch_s"]) / (c["stored_rows"] / c["wall_s"]), 2)
            for r, c in zip(ours, stored, strict=True)
        ],
        "fetch_cpu_us_per_candle": round(
            median([r["fetch_cpu_s"] / r["bronze_rows"] for r in ours]) * 1e6, 2
        ),
        "ccxt_store_cpu_us_per_candle": _us_per(stored, "stored_rows"),
        # CPU of the silver stage (read bronze ... record coverage), every thread
        "silver_us_per_candle": round(
            median([(r["cpu_s"] - r["fetch_cpu_s"]) / r["silver_rows"] for r in ours]) * 1e6, 2
        ),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in ours),
        # CPU per candle of each side's own process (all threads)
        "cpu_us_per_candle": _us_per(ours, "silver_rows"),
        "ccxt_cpu_us_per_candle": _us_per(theirs, "candles"),
        "sandbox_cpu_share": round(median([r["sandbox_cpu_s"] / r["wall_s"] for r in ours]), 2),
        # cores in use per phase, and how busy the event loop's thread is while fetching
        "fetch_cores": round(median([r["fetch_cpu_s"] / r["fetch_s"] for r in ours]), 2),
        "fetch_loop_thread_busy": round(
            median([r["fetch_loop_cpu_s"] / r["fetch_s"] for r in ours]), 2
        ),
        "silver_cores": round(
            median([(r["cpu_s"] - r["fetch_cpu_s"]) / r["silver_s"] for r in ours]), 2
        ),
    }


def prefect_overhead(
    server: SandboxServer, days: int, repeats: int, database: str = "auto"
) -> dict[str, Any]:
    """Same backfill through the Prefect flows and directly; then a re-run of the closed range."""
    out: dict[str, Any] = {}
    with (
        prefect_database(database) as (db_kind, db_url),
        prefect_server(db_url) as (api_url, startup, pid),
    ):
        out["prefect_database"] = db_kind
        out["prefect_startup_s"] = round(startup, 2)
        say(f"  Prefect API up in {startup:.1f} s at {api_url}")
        with scratch() as wh:  # the API's first flow and task runs pay one-off registrations
            run_worker(_job("prefect", 1), _env(wh, server.url, PREFECT_API_URL=api_url))
        flows, direct, server_cpu = [], [], []
        reruns, rerun_ratios, rerun_requests, empties = [], [], [], []
        over_empty, cli, cli_requests = [], [], []
        for i in range(repeats):
            with scratch() as wh:
                env = _env(wh, server.url, PREFECT_API_URL=api_url)
                cpu0 = process_cpu_s(pid)
                p = run_worker(_job("prefect", days), env)
                server_cpu.append(process_cpu_s(pid) - cpu0)
                flows.append(p)
                req0 = _requests(server)
                again = run_worker(_job("prefect", days), env)
                rerun_requests.append(_requests(server) - req0)
                reruns.append(again["wall_s"])
                rerun_ratios.append(again["wall_s"] / p["wall_s"])
                # the floor of any re-run: a flow run that does nothing
                empties.append(run_worker({"job": "empty-flow"}, env)["wall_s"])
                over_empty.append(again["wall_s"] - empties[-1])
                req0 = _requests(server)
                cli.append(cli_noop(_job("prefect", days), env))
                cli_requests.append(_requests(server) - req0)
            with scratch() as wh:
                d = run_worker(_job("direct", days), _env(wh, server.url, PREFECT_API_URL=api_url))
                direct.append(d)
            say(
                f"  run {i + 1}: flows {p['wall_s']:.2f} s, direct {d['wall_s']:.2f} s; "
                f"re-run {again['wall_s']:.2f} s ({rerun_requests[-1]} requests), "
                f"empty flow run {empties[-1]:.2f} s; CLI over the completed range "
                f"{cli[-1]:.2f} s ({cli_requests[-1]} requests)"
            )
        say("  re-run of a completed week and of a completed year (1m, 5 symbols, 3 exchanges)")
        out.update(history_rerun(server, api_url, repeats))
    out["prefect_s"] = round(median([p["wall_s"] for p in flows]), 2)
    out["direct_s"] = round(median([d["wall_s"] for d in direct]), 2)
    out["prefect_overhead_ratio"] = round(out["prefect_s"] / out["direct_s"], 3)
    out["prefect_server_cpu_s"] = round(median(server_cpu), 2)  # during a flow run
    out["rerun_ratio"] = round(median(rerun_ratios), 3)  # each re-run against its first run
    out["rerun_s"] = round(median(reruns), 2)
    out["rerun_requests"] = max(rerun_requests)  # any request in any re-run counts
    out["prefect_empty_flow_s"] = round(median(empties), 3)
    out["rerun_over_empty_flow_ms"] = round(median(over_empty) * 1000, 1)
    out["cli_noop_s"] = round(median(cli), 2)
    out["cli_noop_requests"] = max(cli_requests)
    return out


def cli_noop(job: dict[str, Any], env: dict[str, str]) -> float:
    """`crypto-pipeline backfill` over `job`'s range in a cold process: wall seconds."""
    cli = os.path.join(os.path.dirname(sys.executable), "crypto-pipeline")
    command = [
        cli,
        "backfill",
        "--start",
        job["start"],
        "--end",
        job["end"],
        "--exchanges",
        ",".join(job["exchanges"]),
        "--symbols",
        ",".join(job["symbols"]),
        "--intervals",
        "1m",
        "--datasets",
        "ohlcv",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"crypto-pipeline backfill failed:\n{proc.stderr[-3000:]}")
    return wall


HISTORY_START = "2023-01-01"


def history_rerun(server: SandboxServer, api_url: str, repeats: int) -> dict[str, Any]:
    """Re-runs of a completed week and a completed year of 1m (5 symbols, 3 exchanges) in one
    warehouse: the week fetched for real, the rest of the year copied from one of its days
    with coverage records of its own (`benchmarks.history`). Each re-run is timed both as a
    Prefect flow run (wall of `backfill_flow`) and through the direct stages."""
    from benchmarks.history import extend_history, year_days

    first = date.fromisoformat(HISTORY_START)
    week = _job("direct", 7, start=HISTORY_START)
    year = _job("direct", 365, start=HISTORY_START)
    with scratch() as wh:
        env = _env(wh, server.url, PREFECT_API_URL=api_url)
        run_worker(week, env)
        fetched = {first + timedelta(days=i) for i in range(7)}
        t0 = time.perf_counter()
        copied = extend_history(wh, first + timedelta(days=1), year_days(first, 365, fetched))
        say(f"  year built in {time.perf_counter() - t0:.1f} s ({copied} files copied)")
        flow: dict[str, list[float]] = {"week": [], "year": []}
        direct: dict[str, list[float]] = {"week": [], "year": []}
        requests = 0
        for i in range(repeats):
            for name, job in (("week", week), ("year", year)):
                req0 = _requests(server)
                flow[name].append(run_worker({**job, "job": "prefect"}, env)["wall_s"])
                direct[name].append(run_worker(job, env)["wall_s"])
                requests += _requests(server) - req0
            say(
                f"  run {i + 1}: flow week {flow['week'][-1]:.3f} s, "
                f"year {flow['year'][-1]:.3f} s; direct week {direct['week'][-1]:.3f} s, "
                f"year {direct['year'][-1]:.3f} s"
            )
    return {
        "rerun_week_s": round(median(flow["week"]), 3),
        "rerun_year_s": round(median(flow["year"]), 3),
        "rerun_year_over_week": round(median(flow["year"]) / median(flow["week"]), 2),
        "rerun_week_direct_s": round(median(direct["week"]), 3),
        "rerun_year_direct_s": round(median(direct["year"]), 3),
        "rerun_year_over_week_direct": round(median(direct["year"]) / median(direct["week"]), 2),
        "rerun_history_requests": requests,
    }


def politeness(days: int, full_minutes: int) -> dict[str, Any]:
    """Real sandbox limits (scaled), client pacing on: achieved weight / allowance per exchange.

    Measured in steady state over whole wall-clock minutes (Binance counts weight per fixed
    minute), starting once the client's first 60 s window has passed: a sliding-window client
    can lose up to one minute of allowance at start-up against fixed windows (its first burst
    may straddle a boundary). A backfill larger than the time allowed runs meanwhile; the
    counters are sampled from the sandbox.
    """
    scale = RATE_LIMIT_SCALE
    config = SandboxConfig(seed=7, rate_limits="real", rate_limit_scale=scale)
    now = time.time()
    first_minute = math.ceil((now + 5 + 61) / 60)  # requests start a few seconds from now
    seconds = (first_minute + full_minutes) * 60 - now + 3
    samples: list[tuple[float, dict[str, Any]]] = []
    with SandboxServer(config) as server, scratch() as wh:
        env = {
            **os.environ,
            **_env(wh, server.url),
            "CRYPTO_PIPELINE_CLIENT_RATE_LIMITS": "true",
            "CRYPTO_PIPELINE_RATE_LIMIT_SCALE": str(scale),
        }
        job = _job("polite", days, start="2023-01-01", seconds=seconds)
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker", json.dumps(job)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append((time.time(), server.stats()))
                stop.wait(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out, _ = proc.communicate()
        stop.set()
        sampler.join()
        final = server.stats()
    # whole minutes inside the run, after the first request
    first = next(t for t, s in samples if sum(x["requests"] for x in s.values()) > 0)
    m0 = math.ceil((first + 61) / 60)
    m1 = min(m0 + full_minutes, int(samples[-1][0] // 60))

    def at(t: float) -> dict[str, Any]:
        return min(samples, key=lambda ts: abs(ts[0] - t))[1]

    allowance = {  # per minute, as the sandbox enforces it
        "binance": int(6000 * scale),  # request weight per fixed minute (spot)
        "coinbase": 10 * scale * 60,  # requests: token bucket rate
        "okx": int(20 * scale) * 30,  # history-candles: requests per rolling 2 s
    }
    util: dict[str, float] = {}
    for name, cap in allowance.items():
        a, b = at(m0 * 60), at(m1 * 60)
        field = "weight" if name == "binance" else "requests"
        used = (b[name][field] - a[name][field]) - (
            0 if name == "binance" else b[name]["rate_limited"] - a[name]["rate_limited"]
        )
        util[name] = round(used / (cap * (m1 - m0)), 3) if m1 > m0 else float("nan")
    limited = sum(int(s["rate_limited"]) for s in final.values())
    limited_by = {name: int(s["rate_limited"]) for name, s in final.items()}
    worker = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
    return {
        "rate_limit_scale": scale,
        "measured_minutes": m1 - m0,
        "utilization": util,
        "rate_limit_utilization_min": min(util.values()),
        "rate_limited_responses": limited,
        "rate_limited_by_exchange": limited_by,
        "client_rate_limited": sum(s["rate_limited"] for s in worker["client_stats"].values()),
    }


def transform_speed(days: int, repeats: int) -> dict[str, Any]:
    """Silver normalize + validate + aggregate in memory, on bronze fetched from the sandbox."""
    import polars as pl

    from models.enums import Exchange, Interval
    from storage import PartitionKey, Warehouse
    from tasks.transform.aggregate import aggregate_ohlcv
    from tasks.transform.silver_batch import build_silver

    with SandboxServer(SandboxConfig(seed=7)) as server, scratch() as wh:
        run_worker(_job("direct", days), _env(wh, server.url))
        warehouse = Warehouse(wh)
        from models.enums import Dataset
        from models.partitions import PartitionSpec

        first = date.fromisoformat(BENCH_START)
        bronze = {}
        for i in range(days):
            for ex in EXCHANGES:
                spec = PartitionSpec(
                    exchange=Exchange(ex),
                    dataset=Dataset.OHLCV,
                    interval=Interval.M1,
                    day=first + timedelta(days=i),
                )
                frame = warehouse.read(PartitionKey.of(spec))
                if frame is not None:
                    bronze[spec] = frame
    rows = sum(f.height for f in bronze.values())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        by_day: dict[date, list[pl.DataFrame]] = {}
        for spec, frame in bronze.items():
            batch = build_silver(
                "ohlcv",
                frame,
                exchange=spec.exchange.value,
                interval=spec.interval,
                day=spec.day,
                symbols=SYMBOLS,
                closed=True,
                complete=True,
            )
            by_day.setdefault(spec.day, []).append(batch.data)
        for frames in by_day.values():
            aggregate_ohlcv(pl.concat(frames, how="vertical_relaxed"))
        times.append(time.perf_counter() - t0)
    return {"transform_rows": rows, "transform_rows_per_s": round(rows / median(times))}


def year_run(server: SandboxServer, warehouse: str) -> dict[str, Any]:
    """A year of 1m candles, 5 symbols, 3 exchanges, in 30-day chunks in one worker process."""
    job = _job("direct", 366, start="2023-01-01", chunk_days=30)
    cpu0, req0 = _cpu_self(), _requests(server)
    t0 = time.perf_counter()
    r = run_worker(job, _env(warehouse, server.url))
    return {
        "year_days": 366,
        "year_candles": r["silver_rows"],
        "year_wall_s": round(time.perf_counter() - t0, 1),
        "year_backfill_s": round(r["wall_s"], 1),
        "year_candles_per_s": round(r["silver_rows"] / r["wall_s"]),
        "year_peak_rss_mb": r["peak_rss_mb"],
        "year_requests": _requests(server) - req0,
        "year_sandbox_cpu_s": round(_cpu_self() - cpu0, 1),
        "year_failures": len(r["failures"]),
    }


def scaling(server: SandboxServer, repeats: int) -> dict[str, Any]:
    """Wall time against days (5 symbols) and against symbols (8 days)."""
    by_days: dict[str, float] = {}
    for days in (2, 4, 8, 16):
        runs = [run_direct(server, _job("direct", days)) for _ in range(repeats)]
        by_days[str(days)] = round(median([r["wall_s"] for r in runs]), 2)
        say(f"  {days} days x 5 symbols: {by_days[str(days)]:.2f} s")
    by_symbols: dict[str, float] = {}
    for n in (1, 2, 5):
        job = {**_job("direct", 8), "symbols": SYMBOLS[:n]}
        runs = [run_direct(server, job) for _ in range(repeats)]
        by_symbols[str(n)] = round(median([r["wall_s"] for r in runs]), 2)
        say(f"  8 days x {n} symbols: {by_symbols[str(n)]:.2f} s")
    per_day = {d: round(s / int(d), 3) for d, s in by_days.items()}
    return {"wall_s_by_days": by_days, "s_per_day": per_day, "wall_s_by_symbols": by_symbols}


def archive_path(full: bool) -> dict[str, Any]:
    """`benchmarks.archive` through the bronze stage (its `archive_*` keys): quick, one warm
    run; full, three and the memory check (3 and 12 months, each alone)."""
    args = ["--to-bronze"] + (["--memory-check"] if full else ["--repeats", "1"])
    return run_benchmark("archive", *args)


def symbol_scale() -> dict[str, Any]:
    """`benchmarks.scale` (10 and 100 symbols), its figures under `scale_` keys."""
    figures = run_benchmark("scale")
    return {f"scale_{k}": v for k, v in figures.items() if k not in ("when", "machine")}


def hub_publish(warehouse: str) -> dict[str, Any]:
    """Publish the year's silver to the fake Hub (one commit), in a worker process."""
    from tests.fake_hub import FakeHub

    token = "hf_bench_token"
    with FakeHub(token=token) as hub:
        env = {"CRYPTO_PIPELINE_WAREHOUSE": warehouse, "HF_TOKEN": token, "HF_ENDPOINT": hub.url}
        r = run_worker({"job": "publish", "repo_id": "bench/crypto", "endpoint": hub.url}, env)
    return {
        "publish_s": round(r["wall_s"], 1),
        "publish_files": r["files"],
        "publish_bytes": r["bytes"],
        "publish_peak_rss_mb": r["peak_rss_mb"],
    }


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="a few minutes (default)")
    mode.add_argument("--full", action="store_true", help="adds the year, scaling and publish")
    mode.add_argument(
        "--fetch-only",
        action="store_true",
        help="the throughput section alone (fetch/store vs ccxt), as --quick measures it",
    )
    parser.add_argument(
        "--prefect-db",
        choices=("auto", "postgresql", "sqlite"),
        default="auto",
        help="the Prefect API's database (auto: PostgreSQL on 127.0.0.1:5432 if it answers)",
    )
    args = parser.parse_args(argv)
    full = bool(args.full)
    repeats = 3 if full else 2
    days = 14
    started = time.perf_counter()
    figures: dict[str, Any] = {
        "mode": "full" if full else "fetch-only" if args.fetch_only else "quick",
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "repeats": repeats,
    }
    say(f"machine: {figures['machine']}")
    with SandboxServer(SandboxConfig(seed=7, rate_limits="off")) as server:
        say(f"throughput: {days} days x 5 symbols x 3 exchanges of 1m candles, limits off")
        figures.update(throughput(server, days, repeats))
        if args.fetch_only:
            return _report(figures, started)
        say("Prefect overhead and re-run of the closed range")
        figures.update(prefect_overhead(server, days, repeats, args.prefect_db))
    say(f"politeness: sandbox limits real x{RATE_LIMIT_SCALE}, client pacing on")
    figures.update(politeness(420, 2 if full else 1))  # more work than the time allows
    # Quick: N CLI processes; full: also N flow runs of the deployment on process workers
    # (a few minutes more: a deployment, workers that clone and install, one per N).
    say("shared allowance: N = 1, 2, 4 backfills on one sandbox, Redis allowance")
    modes = ("cli", "deployment") if full else ("cli",)
    figures.update(shared_allowance(database=args.prefect_db, modes=modes))
    say("archive path: a year of 1m Binance spot via the archive, REST allowance real")
    figures.update(archive_path(full))
    say("transforms in memory")
    figures.update(transform_speed(7, repeats + 1))
    if full:
        with (
            SandboxServer(SandboxConfig(seed=7, rate_limits="off")) as server,
            scratch() as wh,
        ):
            say("scaling with days and symbols")
            figures.update(scaling(server, 2))
            say("a year of 1m candles (5 symbols x 3 exchanges), 30-day chunks")
            figures.update(year_run(server, wh))
            say("Hub publish of the year (fake Hub)")
            figures.update(hub_publish(wh))
        say("scale with symbols: 10 and 100 symbols of the realistic universe, 7 days")
        figures.update(symbol_scale())
    return _report(figures, started)


def _report(figures: dict[str, Any], started: float) -> int:
    """Print the figures, then one JSON line (the last line of the output)."""
    figures["bench_s"] = round(time.perf_counter() - started, 1)
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        if key != "machine":
            say(f"  {key:<{width}}  {value}")
    print(json.dumps(figures, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
