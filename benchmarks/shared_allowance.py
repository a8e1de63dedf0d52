"""Scale-out on one egress address: N = 1, 2, 4 `crypto-pipeline backfill` processes at once.

    python -m benchmarks.shared_allowance [--redis redis://127.0.0.1:6379/12] [--days 4]

Every process backfills its own disjoint share of the same days (1m candles of two symbols on
OKX and Coinbase) against one sandbox enforcing the exchanges' real limits, scaled by
`RATE_LIMIT_SCALE` on both sides (the sandbox and the clients' setting) so that a few days keep
the processes waiting on the allowance for several seconds; the allowance is shared through
Redis, and one Prefect server takes their flow runs. The sandbox records when it accepted each
request; the figures are the answers 429/418 it gave and the combined use of the binding
allowance (OKX history candles: 20 requests per rolling 2 s, scaled) from the first accepted
request to the last (`clients.usage.allowance_utilization`), and of Coinbase's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from benchmarks.common import prefect_database, prefect_server, say
from clients.ratelimit import LimitSpec
from clients.usage import allowance_utilization
from sandbox import SandboxConfig, SandboxServer

PROCESSES = (1, 2, 4)
START = date(2024, 1, 8)
SYMBOLS = "BTCUSDT,ETHUSDT"
# What the sandbox grants one address on the endpoints the backfill spends most on.
ALLOWANCES = {
    "okx": LimitSpec("window", 20, 2.0),  # history candles: 20 requests per rolling 2 s
    "coinbase": LimitSpec("bucket", 10, 15),  # 10 requests/s, bursts of 15
}
BINDING = "okx"
RATE_LIMIT_SCALE = 0.5
DEFAULT_REDIS = "redis://127.0.0.1:6379/12"
BIN = Path(sys.executable).parent

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def allowance_of(path: str) -> str | None:
    """Which measured allowance a request path draws on (None: another one)."""
    if path == "/api/v5/market/history-candles":
        return "okx"
    if path.startswith("/products/") and path.endswith("/candles"):
        return "coinbase"
    return None


def recording_sandbox(sends: list[tuple[str, float]]) -> SandboxServer:
    """A sandbox with real limits that notes (allowance, time) of every request it accepts."""
    config = SandboxConfig(seed=7, rate_limits="real", rate_limit_scale=RATE_LIMIT_SCALE)
    server = SandboxServer(config)

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        name = allowance_of(request.path)
        if name is not None and response.status == 200:
            sends.append((name, time.time()))
        return response

    server.app.middlewares.insert(0, record)
    return server


def shares(days: int, processes: int) -> list[tuple[date, date]]:
    """`days` days from START in `processes` disjoint contiguous ranges (as even as fit)."""
    size, extra = divmod(days, processes)
    out, first = [], START
    for i in range(processes):
        last = first + timedelta(days=size + (1 if i < extra else 0) - 1)
        out.append((first, last))
        first = last + timedelta(days=1)
    return out


def run_processes(
    processes: int, days: int, redis_url: str, api_url: str, warehouse: str
) -> dict[str, Any]:
    """N CLI backfills at once on one sandbox; what the sandbox refused and how much of each
    allowance their accepted requests used."""
    sends: list[tuple[str, float]] = []
    with recording_sandbox(sends) as server:
        env = {
            **os.environ,
            "PREFECT_API_URL": api_url,
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "CRYPTO_PIPELINE_WAREHOUSE": warehouse,
            "CRYPTO_PIPELINE_SANDBOX_URL": server.url,
            "CRYPTO_PIPELINE_CLIENT_RATE_LIMITS": "true",
            "CRYPTO_PIPELINE_RATE_LIMIT_SCALE": str(RATE_LIMIT_SCALE),
            "CRYPTO_PIPELINE_ALLOWANCE": redis_url,
            "CRYPTO_PIPELINE_ALLOWANCE_FALLBACK_PROCESSES": "0",
        }
        started = time.perf_counter()
        runs = [
            subprocess.Popen(
                [
                    str(BIN / "crypto-pipeline"),
                    "backfill",
                    "--start",
                    first.isoformat(),
                    "--end",
                    last.isoformat(),
                    "--exchanges",
                    ",".join(ALLOWANCES),
                    "--symbols",
                    SYMBOLS,
                    "--intervals",
                    "1m",
                    "--datasets",
                    "ohlcv",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for first, last in shares(days, processes)
        ]
        errors = [run.communicate(timeout=300)[1] for run in runs]
        wall = time.perf_counter() - started
        stats = server.stats()
    ends = zip(runs, errors, strict=True)
    failed = [err.strip().splitlines()[-1:] for run, err in ends if run.returncode]
    utilization = {
        name: round(
            allowance_utilization(
                [(t, 1.0) for n, t in sends if n == name], spec.scaled(RATE_LIMIT_SCALE)
            ),
            3,
        )
        for name, spec in ALLOWANCES.items()
    }
    return {
        "processes": processes,
        "wall_s": round(wall, 1),
        "rate_limited": sum(int(s["rate_limited"]) for s in stats.values()),
        "accepted": {name: sum(1 for n, _ in sends if n == name) for name in ALLOWANCES},
        "utilization": utilization,
        "failed_runs": failed,
    }


def shared_allowance(
    redis_url: str = DEFAULT_REDIS, days: int = 4, database: str = "auto"
) -> dict[str, Any]:
    """The figures for N = 1, 2, 4 (each N backfills the same number of days in total)."""
    runs = []
    with prefect_database(database) as (_, db_url), prefect_server(db_url) as (api_url, up, _):
        say(f"  Prefect API up in {up:.1f} s")
        for n in PROCESSES:
            with tempfile.TemporaryDirectory(prefix="bench-shared-") as warehouse:
                run = run_processes(n, days, redis_url, api_url, warehouse)
            runs.append(run)
            say(
                f"  N={n}: {run['wall_s']} s, {run['rate_limited']} answers 429/418, "
                + ", ".join(
                    f"{name} {run['utilization'][name]:.3f} of its allowance "
                    f"({run['accepted'][name]} accepted)"
                    for name in ALLOWANCES
                )
                + (f"; failed: {run['failed_runs']}" if run["failed_runs"] else "")
            )
    return {
        "shared_limit_processes": list(PROCESSES),
        "shared_limit_rate_limit_scale": RATE_LIMIT_SCALE,
        "shared_limit_utilization": [r["utilization"][BINDING] for r in runs],
        "shared_limit_utilization_min": min(r["utilization"][BINDING] for r in runs),
        "shared_limit_rate_limited": sum(r["rate_limited"] for r in runs),
        "shared_limit_failed_runs": sum(len(r["failed_runs"]) for r in runs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shared_allowance")
    parser.add_argument("--redis", default=DEFAULT_REDIS, help="the shared allowance's Redis")
    parser.add_argument("--days", type=int, default=4, help="days backfilled in total per N")
    parser.add_argument("--prefect-db", choices=("auto", "postgresql", "sqlite"), default="auto")
    args = parser.parse_args(argv)
    say(
        f"shared allowance: N = 1, 2, 4 CLI backfills on one sandbox, real limits "
        f"x{RATE_LIMIT_SCALE}, {args.redis}"
    )
    figures = shared_allowance(args.redis, args.days, args.prefect_db)
    print(json.dumps(figures, separators=(",", ":")), flush=True)
    return 0 if figures["shared_limit_failed_runs"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
