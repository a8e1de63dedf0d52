"""The silver stage alone, in CPU microseconds per candle: `python -m benchmarks.silver [runs]`.

Bronze for the throughput section of `benchmarks.run` (14 days x 5 symbols x 3 exchanges of
1m candles, sandbox seed 7) is fetched once into a scratch warehouse; each run then builds
silver (`tasks.silver_stage.run_silver`: read bronze, normalize, validate, dedup, gaps, write
silver, aggregate, write the aggregate, record coverage) on a fresh copy of it, in this
process. The figure is this process's CPU (every thread) per silver candle, the
`silver_us_per_candle` of `benchmarks.run`, without the fetch or the other sections.

    --phases       after the runs, one more run with the days built one after another in
                   this thread, printing the CPU seconds of each step (inclusive) per candle
    --symbols N    the first N USDT pairs of the sandbox's universe (`benchmarks.scale`'s
                   scale point) over `--days` (7 with --symbols), instead of the 5 majors:
                   the same steps at the size of a wide backfill's day files
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import importlib
import json
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from benchmarks.common import BENCH_START, EXCHANGES, SYMBOLS, median, say

DAYS = 14


def process_cpu_s() -> float:
    """CPU seconds (user + system) of this process so far, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _context(warehouse: str, sandbox_url: str = "http://127.0.0.1:9") -> Any:
    """The run's context, its settings passed (not read from the environment)."""
    from models.settings import load_settings
    from tasks.context import RunContext

    settings = load_settings(warehouse=warehouse, sandbox_url=sandbox_url, client_rate_limits=False)
    return RunContext(settings)


@dataclass(frozen=True)
class Shape:
    """What is built: the symbols, over `days` days from `start`."""

    symbols: tuple[str, ...] = tuple(SYMBOLS)
    start: str = BENCH_START
    days: int = DAYS


def _request(ctx: Any, shape: Shape) -> Any:
    from models.selection import Selection

    start = date.fromisoformat(shape.start)
    return Selection(
        start=start,
        end=start + timedelta(days=shape.days - 1),
        exchanges=EXCHANGES,
        symbols=list(shape.symbols),
        intervals=["1m"],
        datasets=["ohlcv"],
    ).resolve(ctx.settings)


async def _fetch_bronze(warehouse: str, shape: Shape) -> int:
    from sandbox import SandboxConfig, SandboxServer
    from tasks.bronze_stage import run_bronze

    with SandboxServer(SandboxConfig(seed=7, rate_limits="off")) as server:
        ctx = _context(warehouse, server.url)
        report = await run_bronze(_request(ctx, shape), ctx)
    if report.failures:
        raise RuntimeError(f"bronze failed: {report.failures[:3]}")
    return int(report.rows)


class _Phases:
    """CPU seconds spent inside chosen functions (inclusive), by patching them in place."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = collections.defaultdict(float)
        self.calls: collections.Counter[str] = collections.Counter()

    def wrap(self, module: str, name: str, label: str) -> None:
        owner: Any = importlib.import_module(module)
        attr = name
        if "." in name:
            cls, attr = name.split(".")
            owner = getattr(owner, cls)
        if not hasattr(owner, attr):
            return
        inner: Callable[..., Any] = getattr(owner, attr)

        @functools.wraps(inner)
        def timed(*args: Any, **kwargs: Any) -> Any:
            c0 = process_cpu_s()
            try:
                return inner(*args, **kwargs)
            finally:
                self.cpu[label] += process_cpu_s() - c0
                self.calls[label] += 1

        setattr(owner, attr, timed)

    def install(self) -> None:
        for module, name, label in [
            ("tasks.silver_day", "build_day", "build_day (all of a day)"),
            ("tasks.silver_day", "write_partition", " write_partition (all of a file)"),
            ("tasks.silver_partition", "read_columns", "  read bronze"),
            ("tasks.silver_partition", "build_silver", "  build_silver"),
            ("tasks.transform.silver_batch", "validated", "   normalize+dedup+validate"),
            ("tasks.transform.silver_batch", "_coverage", "   coverage and gaps"),
            ("tasks.silver_partition", "_never_degrade", "  never-degrade check"),
            ("storage.warehouse", "partition_table", "  write: checks, to Arrow"),
            ("storage.warehouse", "encode", "  write: Parquet encode"),
            ("storage.fs", "Store.put_bytes", "  write: file, fsync"),
            ("tasks.silver_day", "build_aggregate", " build_aggregate (incl. write)"),
            ("tasks.transform.aggregate", "aggregate_ohlcv", "  aggregate_ohlcv"),
            ("storage.coverage", "CoverageIndex.upsert", "coverage upsert"),
            ("storage.coverage", "CoverageIndex.compact", "coverage compact"),
        ]:
            self.wrap(module, name, label)

    def report(self, rows: int) -> None:
        for label, cpu in self.cpu.items():
            say(f"  {label:<36} {self.calls[label]:>4} calls {cpu / rows * 1e6:6.2f} us/candle")


@contextmanager
def _copy_of(bronze: str) -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="bench-silver-")
    try:
        for name in os.listdir(bronze):
            shutil.copytree(os.path.join(bronze, name), os.path.join(path, name))
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def _run(bronze: str, shape: Shape) -> tuple[int, float, float]:
    from tasks.silver_stage import run_silver

    with _copy_of(bronze) as warehouse:
        ctx = _context(warehouse)
        request = _request(ctx, shape)
        c0, t0 = process_cpu_s(), time.perf_counter()
        report = await run_silver(request, ctx)
        cpu, wall = process_cpu_s() - c0, time.perf_counter() - t0
    if report.failures:
        raise RuntimeError(f"silver failed: {report.failures[:3]}")
    return int(report.rows), cpu, wall


async def _sequential(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


async def main_async(runs: int, phases: bool, shape: Shape = Shape()) -> dict[str, Any]:
    for module in ("flows.backfill", "tasks.silver_day", "tasks.silver_stage", "prefect"):
        importlib.import_module(module)  # imports before timing, as `benchmarks.worker`
    with tempfile.TemporaryDirectory(prefix="bench-bronze-") as bronze:
        bronze_rows = await _fetch_bronze(bronze, shape)
        say(f"bronze: {bronze_rows:,} candles")
        figures = []
        for i in range(runs):
            rows, cpu, wall = await _run(bronze, shape)
            figures.append(cpu / rows * 1e6)
            say(
                f"  run {i + 1}: {rows:,} candles, CPU {cpu:.3f} s, wall {wall:.3f} s, "
                f"{figures[-1]:.2f} us/candle"
            )
        if phases:
            steps = _Phases()
            steps.install()
            asyncio.to_thread = _sequential  # type: ignore[assignment]
            rows, cpu, _ = await _run(bronze, shape)
            say(f"phases (days one after another, one thread): {cpu / rows * 1e6:.2f} us/candle")
            steps.report(rows)
    return {
        "symbols": len(shape.symbols),
        "days": shape.days,
        "silver_us_per_candle": round(median(figures), 2),
        "silver_us_per_candle_min": round(min(figures), 2),
        "runs": [round(f, 2) for f in figures],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.silver", description=__doc__)
    parser.add_argument("runs", nargs="?", type=int, default=5)
    parser.add_argument("--phases", action="store_true")
    parser.add_argument("--symbols", type=int, default=0)
    parser.add_argument("--days", type=int, default=0)
    args = parser.parse_args(argv)
    shape = Shape(days=args.days or DAYS)
    if args.symbols:
        from benchmarks.scale import SCALE_DAYS, SCALE_START, universe_symbols

        shape = Shape(tuple(universe_symbols(args.symbols)), SCALE_START, args.days or SCALE_DAYS)
    print(json.dumps(asyncio.run(main_async(args.runs, args.phases, shape))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
