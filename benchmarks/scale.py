"""Scale with symbols: the backfill of many symbols of the sandbox's realistic universe.

The scale point is 100 symbols x 7 days x 1m candles x 3 exchanges (binance, coinbase, okx),
rate limits off on both sides, against the sandbox's wider universe (`sandbox.universe`): the
five majors, then the generated tokens in turnover order, all quoted in USDT. As on the real
exchanges, not every exchange lists every one (Coinbase lists few USDT books: skipped there
with a notice), some are delisted, halted or purged (unavailable at the source, not failures).
Each point is one direct backfill (`benchmarks.worker`'s `direct` job: the pipeline's own
bronze and silver stages, in a fresh process) into a fresh warehouse, on a cold sandbox page
cache for those symbols (its ~400 cached listing-days cannot hold 100 symbols' week anyway).
A smaller point (10 symbols by default) runs first, so the figures show how cost grows with
symbols. Printed: a line per point, then one JSON line (the last on stdout) whose top-level
`wall_s`, `requests`, `peak_rss_mb`, `silver_rows` are the largest point's.

    python -m benchmarks.scale [--points 10,100] [--days 7] [--start 2025-08-04]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from benchmarks.common import EXCHANGES, SYMBOLS, machine, run_worker, say
from benchmarks.run import _cpu_self, _env, _requests, scratch
from models.enums import Layer
from sandbox import SandboxConfig, SandboxServer, universe
from storage import Warehouse

# A closed week after every generated listing opened (GENERATED_UNTIL is 2025-07-01).
SCALE_START = "2025-08-04"
SCALE_DAYS = 7
SCALE_POINTS = (10, 100)


def universe_symbols(count: int) -> list[str]:
    """The first `count` USDT pairs of the sandbox's universe: the majors, then the generated
    tokens by turnover rank (the fixed delisted/halted/purged ones among the first)."""
    names = [*(s.removesuffix("USDT") for s in SYMBOLS), *universe.NAMES]
    if count > len(names):
        raise ValueError(f"the sandbox's universe has {len(names)} USDT bases, asked {count}")
    return [f"{name}USDT" for name in names[:count]]


def silver_rows(warehouse: str) -> dict[str, int]:
    """Rows of silver ohlcv and its aggregate in the warehouse."""
    wh = Warehouse(warehouse)
    out = {}
    for dataset in ("ohlcv", "ohlcv_aggregated"):
        try:
            out[dataset] = int(wh.scan(Layer.SILVER, dataset).select(pl.len()).collect().item())
        except (FileNotFoundError, pl.exceptions.ComputeError):
            out[dataset] = 0
    return out


def point(server: SandboxServer, count: int, start: str, days: int) -> dict[str, Any]:
    """One backfill of `count` symbols into a fresh warehouse, timed from outside too."""
    end = (date.fromisoformat(start) + timedelta(days=days - 1)).isoformat()
    job = {
        "job": "direct",
        "start": start,
        "end": end,
        "symbols": universe_symbols(count),
        "exchanges": EXCHANGES,
        "intervals": ["1m"],
        "datasets": ["ohlcv"],
    }
    load_before = os.getloadavg()[0]
    with scratch() as warehouse:
        cpu0, req0, t0 = _cpu_self(), _requests(server), time.perf_counter()
        r = run_worker(job, _env(warehouse, server.url))
        process_s = time.perf_counter() - t0
        sandbox_cpu_s, requests = _cpu_self() - cpu0, _requests(server) - req0
        rows = silver_rows(warehouse)
    listed_days = count * days * len(EXCHANGES)
    return {
        "symbols": count,
        "days": days,
        "wall_s": round(r["wall_s"], 2),
        "process_wall_s": round(process_s, 2),
        "fetch_s": round(r["fetch_s"], 2),
        "silver_s": round(r["silver_s"], 2),
        "cpu_s": round(r["cpu_s"], 2),
        # CPU per candle of each stage (every thread), as `benchmarks.run` reports them
        "fetch_cpu_us_per_candle": _per_row(r["fetch_cpu_s"], r["bronze_rows"]),
        "silver_us_per_candle": _per_row(r["cpu_s"] - r["fetch_cpu_s"], r["silver_rows"]),
        "sandbox_cpu_s": round(sandbox_cpu_s, 2),
        "requests": requests,
        "requests_by_exchange": r["requests"],
        "peak_rss_mb": r["peak_rss_mb"],
        "bronze_rows": r["bronze_rows"],
        "silver_rows": rows["ohlcv"],
        "silver_aggregated_rows": rows["ohlcv_aggregated"],
        "candles_per_s": round(rows["ohlcv"] / r["wall_s"]) if r["wall_s"] else 0,
        "ms_per_symbol_day_exchange": round(r["wall_s"] / listed_days * 1000, 2),
        # Failed partitions (exchange, dataset, interval, day), each listing its symbols; the
        # first five messages are shown.
        "failed_partitions": r.get("failures_total", len(r["failures"])),
        # The machine's 1-minute load average before and after (2 cores shared: a load above
        # ~2 means other work took CPU from this run, and its figures are slower for it).
        "load_avg": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "failures": [f if len(f) <= 300 else f[:300] + "..." for f in r["failures"]],
    }


def _per_row(cpu_s: float, rows: int) -> float:
    """CPU microseconds per row (0 when there are none)."""
    return round(cpu_s / rows * 1e6, 2) if rows else 0.0


def growth(points: list[dict[str, Any]]) -> dict[str, float]:
    """How cost grows from the smallest point to the largest: ratios against the symbol ratio
    (1.0 = linear in symbols)."""
    small, large = points[0], points[-1]
    factor = large["symbols"] / small["symbols"]
    out = {"symbols_ratio": factor}
    for key in ("wall_s", "requests", "silver_rows", "peak_rss_mb"):
        if small[key]:
            ratio = large[key] / small[key]
            out[f"{key}_ratio"] = round(ratio, 2)
            out[f"{key}_ratio_per_symbol_ratio"] = round(ratio / factor, 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__)
    parser.add_argument("--points", default=",".join(map(str, SCALE_POINTS)))
    parser.add_argument("--days", type=int, default=SCALE_DAYS)
    parser.add_argument("--start", default=SCALE_START)
    args = parser.parse_args(argv)
    counts = sorted({int(p) for p in args.points.split(",") if p.strip()})
    started = time.perf_counter()
    figures: dict[str, Any] = {
        "benchmark": "scale_symbols_1m",
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "start": args.start,
        "days": args.days,
        "exchanges": EXCHANGES,
        "interval": "1m",
        "rate_limits": "off",
    }
    say(f"machine: {figures['machine']}")
    points = []
    with SandboxServer(SandboxConfig(seed=7, rate_limits="off")) as server:
        for count in counts:
            say(f"scale: {count} symbols x {args.days} days x 1m x {len(EXCHANGES)} exchanges")
            p = point(server, count, args.start, args.days)
            points.append(p)
            say(
                f"  {p['silver_rows']:,} silver rows in {p['wall_s']:.2f} s "
                f"(fetch {p['fetch_s']:.2f} s, silver {p['silver_s']:.2f} s = "
                f"{p['silver_us_per_candle']:.2f} us CPU a candle; process "
                f"{p['process_wall_s']:.2f} s), {p['requests']:,} requests, peak RSS "
                f"{p['peak_rss_mb']:.0f} MB, sandbox CPU {p['sandbox_cpu_s']:.2f} s, "
                f"{p['failed_partitions']} failed partitions, load average {p['load_avg']}"
            )
    largest = points[-1]
    figures.update({k: largest[k] for k in ("symbols", "wall_s", "requests", "peak_rss_mb")})
    figures["silver_rows"] = largest["silver_rows"]
    figures["silver_us_per_candle"] = largest["silver_us_per_candle"]
    figures["points"] = points
    if len(points) > 1:
        figures["growth"] = growth(points)
    figures["bench_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(figures, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
