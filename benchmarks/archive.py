"""A year of 1m Binance spot candles via the archive, against the REST allowance floor.

The sandbox runs in a child process with the real rate limits in force (`--rate-limits real`)
and the client paces REST as it would live; candles are asked per UTC day and symbol, as the
bronze stage asks them, with `source=auto` (closed months from the monthly archive files).
Printed as JSON: wall time, archive and REST requests, bytes, the client process's peak RSS
(after the first quarter and at the end: flat in the range length), and the REST floor for
the same candles: weight needed (1,000 candles per request of weight 2) / 6,000 per minute.
The run is made twice: cold (the sandbox builds each file when first asked; its CPU shares the
machine) and warm (files prebuilt, as the live archive serves them); the figures are the warm
run's, the cold wall time is reported beside them.

    python -m benchmarks.archive [--year 2024] [--months 12] [--symbols BTCUSDT,...]
        [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from clients.binance import BinanceClient
from clients.factory import make_client
from models.enums import Exchange, Interval
from models.settings import DEFAULT_SYMBOLS
from sandbox import SandboxConfig, SandboxProcess

SPOT_WEIGHT_PER_MINUTE = 6000
KLINES_WEIGHT = 2
KLINES_PER_REQUEST = 1000


def peak_rss_mb() -> float:
    """Peak resident set of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s() -> float:
    """User + system CPU seconds of this process (every thread)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of another process (the sandbox), from /proc."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def year_days(year: int, months: int) -> list[datetime]:
    """The first `months` months of `year`, day by day."""
    start = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + months // 12, months % 12 + 1, 1, tzinfo=UTC)
    return [start + timedelta(days=n) for n in range((end - start).days)]


async def fetch_year(
    url: str, symbols: list[str], year: int, concurrency: int, months: int = 12
) -> dict[str, Any]:
    days = year_days(year, months)
    made = make_client(Exchange.BINANCE, sandbox_url=url, binance_source="auto")
    assert isinstance(made, BinanceClient)
    rows = 0
    quarter_rss = 0.0
    semaphore = asyncio.Semaphore(concurrency)

    async def one(symbol: str, day: datetime) -> int:
        async with semaphore:
            frame = await made.ohlcv(symbol, Interval.M1, day, day + timedelta(days=1))
            return frame.height

    began, cpu_began = time.perf_counter(), cpu_s()
    async with made as client:
        for n in range(0, len(days), 7):  # a week of days at a time, every symbol
            week = days[n : n + 7]
            counts = await asyncio.gather(*(one(s, d) for d in week for s in symbols))
            rows += sum(counts)
            if week[-1].month >= 4 and not quarter_rss:
                quarter_rss = peak_rss_mb()
        wall = time.perf_counter() - began
        cpu = cpu_s() - cpu_began
        archive = client.archive.stats
        return {
            "rows": rows,
            "wall_s": round(wall, 2),
            "candles_per_s": round(rows / wall),
            "client_cpu_s": round(cpu, 2),
            "archive_requests": archive.requests,
            "archive_bytes": archive.bytes,
            "archive_files": archive.files,
            "archive_cache_hits": archive.cache_hits,
            "archive_fallbacks": archive.fallbacks,
            "rest_requests": client.stats.requests,
            "rest_weight": client.stats.weight,
            "rest_by_endpoint": dict(client.stats.by_endpoint),
            "peak_rss_mb_first_quarter": round(quarter_rss, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "cache_bytes_held_at_end": client.archive.cached_bytes,
        }


def rest_floor(rows: int, symbols: int, days: int) -> dict[str, float]:
    """The REST allowance floor for `rows` 1m candles: packed 1,000 per request, and as the
    per-day partitions ask them (two requests per symbol-day)."""
    packed = math.ceil(rows / KLINES_PER_REQUEST) * KLINES_WEIGHT
    per_day = symbols * days * math.ceil(1440 / KLINES_PER_REQUEST) * KLINES_WEIGHT
    return {
        "weight_packed": packed,
        "floor_s_packed": round(packed / SPOT_WEIGHT_PER_MINUTE * 60, 1),
        "weight_per_day_calls": per_day,
        "floor_s_per_day_calls": round(per_day / SPOT_WEIGHT_PER_MINUTE * 60, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--year", type=int, default=2024)
    parser.add_argument("--symbols", default=",".join(DEFAULT_SYMBOLS))
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--months",
        type=int,
        default=12,
        choices=range(1, 13),
        metavar="1..12",
        help="the first N months of the year (memory is flat in N: compare 3 and 12)",
    )
    args = parser.parse_args(argv)
    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    with SandboxProcess(SandboxConfig(seed=7, rate_limits="real")) as sandbox:
        pid = getattr(getattr(sandbox, "_process", None), "pid", None)
        # Cold: the sandbox builds every file as it is first asked (the live archive serves
        # prebuilt files); warm: the same run with a fresh client once the sandbox holds them.
        cold = asyncio.run(
            fetch_year(sandbox.url, symbols, args.year, args.concurrency, args.months)
        )
        sandbox_cpu = process_cpu_s(pid)
        result = asyncio.run(
            fetch_year(sandbox.url, symbols, args.year, args.concurrency, args.months)
        )
        sandbox_after = process_cpu_s(pid)
    days = len(year_days(args.year, args.months))
    floor = rest_floor(result["rows"], len(symbols), days)
    serving = (
        round(sandbox_after - sandbox_cpu, 2)
        if sandbox_cpu is not None and sandbox_after is not None
        else None
    )
    report = {
        "benchmark": "archive_year_1m_binance_spot",
        "year": args.year,
        "months": args.months,
        "symbols": symbols,
        "rate_limits": "real",
        **result,
        "sandbox_cpu_s": serving,
        "load_average_1m": round(os.getloadavg()[0], 1),
        "rest_floor": floor,
        "cold_sandbox_wall_s": cold["wall_s"],
        "cold_sandbox_speedup_vs_floor_packed": round(floor["floor_s_packed"] / cold["wall_s"], 1),
        "speedup_vs_floor_packed": round(floor["floor_s_packed"] / result["wall_s"], 1),
        "speedup_vs_floor_per_day_calls": round(
            floor["floor_s_per_day_calls"] / result["wall_s"], 1
        ),
        "target_speedup": 10,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
