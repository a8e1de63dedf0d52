"""Scale-out on one egress address: N = 1, 2, 4 backfills at once, as CLI processes and as
flow runs of the backfill deployment on a process work pool.

    python -m benchmarks.shared_allowance [--redis redis://127.0.0.1:6379/12] [--days 4]
        [--mode cli|deployment|both]

Mode `cli`: N `crypto-pipeline backfill` processes. Mode `deployment`: the backfill deployment
of prefect.yaml deployed on the server (its pull steps clone a snapshot of this working tree,
`python -m deployments.setup --git-snapshot`), N flow runs of it created at once and run by
min(N, 2) process workers (each taking at most its share of them), every run in its own process.

Every process backfills its own disjoint share of the same days (1m candles of two symbols on
OKX and Coinbase) against one sandbox enforcing the exchanges' real limits, scaled by
`RATE_LIMIT_SCALE` on both sides (the sandbox and the clients' setting) so that a few days keep
the processes waiting on the allowance for several seconds; the allowance is shared through
Redis, and one Prefect server takes their flow runs. The sandbox records when it accepted each
request; the figures are the answers 429/418 it gave and the combined use of the binding
allowance (OKX history candles: 20 requests per rolling 2 s, scaled) from the first accepted
request to the last (`clients.usage.allowance_utilization`), and of Coinbase's. In deployment
mode every run must also end Completed with its days complete in silver's coverage index.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
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
REPO = Path(__file__).resolve().parents[1]
MODES = ("cli", "deployment")
POOL = "crypto-pipeline"
DEPLOYMENT = "backfill/backfill"
MAX_WORKERS = 2

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
            **pipeline_env(warehouse, server.url, redis_url),
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
    utilization = utilization_of(sends)
    return {
        "processes": processes,
        "wall_s": round(wall, 1),
        "rate_limited": sum(int(s["rate_limited"]) for s in stats.values()),
        "accepted": {name: sum(1 for n, _ in sends if n == name) for name in ALLOWANCES},
        "utilization": utilization,
        "failed_runs": failed,
    }


def utilization_of(sends: list[tuple[str, float]]) -> dict[str, float]:
    """Combined use of each measured allowance by the requests the sandbox accepted."""
    return {
        name: round(
            allowance_utilization(
                [(t, 1.0) for n, t in sends if n == name], spec.scaled(RATE_LIMIT_SCALE)
            ),
            3,
        )
        for name, spec in ALLOWANCES.items()
    }


def selection(first: date, last: date) -> dict[str, Any]:
    """The backfill deployment's `selection` parameter for one share (as the CLI mode's)."""
    return {
        "start": first.isoformat(),
        "end": last.isoformat(),
        "exchanges": list(ALLOWANCES),
        "symbols": SYMBOLS.split(","),
        "intervals": ["1m"],
        "datasets": ["ohlcv"],
    }


def client_env(api_url: str, home: Path) -> dict[str, str]:
    """The environment of a process talking to the benchmark's server (its own Prefect home)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CRYPTO_"))}
    return {
        **env,
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(home),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    }


def deploy(api_url: str, scratch: Path) -> None:
    """The work pool, a snapshot of this working tree as the pull steps' git source, and the
    backfill deployment of prefect.yaml, on the server at `api_url`."""
    env = client_env(api_url, scratch / "deploy-home")
    for cmd in (
        [str(BIN / "python"), "-m", "deployments.setup", "--git-snapshot", str(scratch / "src")],
        [str(BIN / "prefect"), "--no-prompt", "deploy", "--name", "backfill"],
    ):
        done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        if done.returncode:
            raise RuntimeError(f"{' '.join(cmd[1:])} failed:\n{done.stdout}\n{done.stderr}")


def pipeline_env(warehouse: str, sandbox_url: str, redis_url: str) -> dict[str, str]:
    """The settings every measured process runs with: the sandbox's real limits (scaled) paced
    by the client, the allowance shared through Redis and no silent fallback."""
    return {
        "CRYPTO_PIPELINE_WAREHOUSE": warehouse,
        "CRYPTO_PIPELINE_SANDBOX_URL": sandbox_url,
        "CRYPTO_PIPELINE_CLIENT_RATE_LIMITS": "true",
        "CRYPTO_PIPELINE_RATE_LIMIT_SCALE": str(RATE_LIMIT_SCALE),
        "CRYPTO_PIPELINE_ALLOWANCE": redis_url,
        "CRYPTO_PIPELINE_ALLOWANCE_FALLBACK_PROCESSES": "0",
    }


@contextmanager
def process_workers(
    count: int, limit: int, env: dict[str, str], scratch: Path, tag: str
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`count` process workers of the pool, each running at most `limit` flow runs at once,
    each with its own Prefect home and temporary directory."""
    workers = []
    try:
        for i in range(count):
            own = scratch / f"worker-{tag}-{i}"
            (own / "tmp").mkdir(parents=True)
            log = open(own / "worker.log", "wb")  # noqa: SIM115 - closed with the worker
            workers.append(
                subprocess.Popen(
                    [
                        str(BIN / "prefect"),
                        "worker",
                        "start",
                        "--pool",
                        POOL,
                        "--type",
                        "process",
                        "--name",
                        f"bench-{tag}-{i}",
                        "--limit",
                        str(limit),
                    ],
                    cwd=own,
                    env={**env, "PREFECT_HOME": str(own / "home"), "TMPDIR": str(own / "tmp")},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            log.close()
        yield workers
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


async def create_flow_runs(parameters: list[dict[str, Any]]) -> list[Any]:
    """One flow run of the backfill deployment per parameter set, created back to back."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        deployment = await client.read_deployment_by_name(DEPLOYMENT)
        return [
            await client.create_flow_run_from_deployment(deployment.id, parameters=p)
            for p in parameters
        ]


async def workers_online(names: list[str], timeout: float = 120) -> None:
    """Return once every named worker of the pool polls the API (so flow runs created next
    are taken by all of them at once, not by the first up while the others still start)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import WorkerStatus

    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while True:
            workers = await client.read_workers_for_work_pool(work_pool_name=POOL)
            online = {w.name for w in workers if w.status == WorkerStatus.ONLINE}
            if set(names) <= online:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"workers not online after {timeout:.0f}s: {names}, {online}")
            await asyncio.sleep(0.25)


async def wait_final(flow_run_ids: list[Any], timeout: float) -> list[Any]:
    """The flow runs once every one is in a final state (or as they are at `timeout`)."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while True:
            runs = [await client.read_flow_run(i) for i in flow_run_ids]
            final = all(r.state is not None and r.state.is_final() for r in runs)
            if final or time.monotonic() > deadline:
                return runs
            await asyncio.sleep(1.0)


def most_at_once(runs: list[Any]) -> int:
    """The largest number of the flow runs that were Running at one moment."""
    edges = sorted(
        [(r.start_time.timestamp(), 1) for r in runs if r.start_time and r.end_time]
        + [(r.end_time.timestamp(), -1) for r in runs if r.start_time and r.end_time]
    )
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def silver_complete(warehouse: str, days: int) -> bool:
    """Every day, exchange and symbol of the benchmark complete in silver's coverage index."""
    from models.enums import Layer
    from storage import Warehouse

    coverage = Warehouse(warehouse).coverage.query(layer=Layer.SILVER, dataset="ohlcv")
    expected = days * len(ALLOWANCES) * len(SYMBOLS.split(","))
    return coverage.height == expected and bool(coverage["complete"].all())


def run_flow_runs(
    runs: int, days: int, redis_url: str, api_url: str, warehouse: str, scratch: Path
) -> dict[str, Any]:
    """N flow runs of the backfill deployment at once on process workers, one sandbox: what
    the sandbox refused, how much of each allowance they used, whether all of it landed."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    sends: list[tuple[str, float]] = []
    workers = min(runs, MAX_WORKERS)
    with recording_sandbox(sends) as server, temporary_settings({PREFECT_API_URL: api_url}):
        env = {
            **client_env(api_url, scratch / "unused-home"),
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_PREFETCH_SECONDS": "1",
            **pipeline_env(warehouse, server.url, redis_url),
        }
        tag = f"n{runs}"
        with process_workers(workers, math.ceil(runs / workers), env, scratch, tag):
            asyncio.run(workers_online([f"bench-{tag}-{i}" for i in range(workers)]))
            started = time.perf_counter()
            created = asyncio.run(
                create_flow_runs([{"selection": selection(a, b)} for a, b in shares(days, runs)])
            )
            ended = asyncio.run(wait_final([r.id for r in created], timeout=900))
        wall = time.perf_counter() - started
        stats = server.stats()
    failed = [
        f"{r.name}: {r.state.name if r.state else 'no state'} {r.state.message if r.state else ''}"
        for r in ended
        if r.state is None or not r.state.is_completed()
    ]
    return {
        "runs": runs,
        "workers": workers,
        "wall_s": round(wall, 1),
        "rate_limited": sum(int(s["rate_limited"]) for s in stats.values()),
        "accepted": {name: sum(1 for n, _ in sends if n == name) for name in ALLOWANCES},
        "utilization": utilization_of(sends),
        "failed_runs": failed,
        "complete": not failed and silver_complete(warehouse, days),
        "most_at_once": most_at_once(ended),
    }


def report(label: str, run: dict[str, Any]) -> None:
    say(
        f"  {label}: {run['wall_s']} s, {run['rate_limited']} answers 429/418, "
        + ", ".join(
            f"{name} {run['utilization'][name]:.3f} of its allowance "
            f"({run['accepted'][name]} accepted)"
            for name in ALLOWANCES
        )
        + (f"; failed: {run['failed_runs']}" if run["failed_runs"] else "")
        + ("" if run.get("complete", True) else "; INCOMPLETE")
    )


def shared_allowance(
    redis_url: str = DEFAULT_REDIS,
    days: int = 4,
    database: str = "auto",
    modes: tuple[str, ...] = MODES,
) -> dict[str, Any]:
    """The figures for N = 1, 2, 4 in each mode (each N backfills the same days in total).

    Keys `shared_limit_*` are the CLI mode's, `shared_limit_deployment_*` the deployment
    mode's (N flow runs of the backfill deployment on process workers)."""
    figures: dict[str, Any] = {
        "shared_limit_processes": list(PROCESSES),
        "shared_limit_rate_limit_scale": RATE_LIMIT_SCALE,
    }
    with prefect_database(database) as (_, db_url), prefect_server(db_url) as (api_url, up, _):
        say(f"  Prefect API up in {up:.1f} s")
        if "cli" in modes:
            runs = []
            for n in PROCESSES:
                with tempfile.TemporaryDirectory(prefix="bench-shared-") as warehouse:
                    run = run_processes(n, days, redis_url, api_url, warehouse)
                runs.append(run)
                report(f"cli N={n}", run)
            figures.update(
                {
                    "shared_limit_utilization": [r["utilization"][BINDING] for r in runs],
                    "shared_limit_utilization_min": min(r["utilization"][BINDING] for r in runs),
                    "shared_limit_rate_limited": sum(r["rate_limited"] for r in runs),
                    "shared_limit_failed_runs": sum(len(r["failed_runs"]) for r in runs),
                }
            )
        if "deployment" in modes:
            runs = []
            with tempfile.TemporaryDirectory(prefix="bench-shared-deploy-") as tmp:
                scratch = Path(tmp)
                deploy(api_url, scratch)
                for n in PROCESSES:
                    target = str(scratch / f"warehouse-n{n}")
                    run = run_flow_runs(n, days, redis_url, api_url, target, scratch)
                    runs.append(run)
                    report(
                        f"deployment N={n} ({run['workers']} process workers, "
                        f"{run['most_at_once']} runs at once at most)",
                        run,
                    )
            figures.update(
                {
                    "shared_limit_deployment_workers": [r["workers"] for r in runs],
                    "shared_limit_deployment_wall_s": [r["wall_s"] for r in runs],
                    "shared_limit_deployment_runs_at_once": [r["most_at_once"] for r in runs],
                    "shared_limit_deployment_utilization": [
                        r["utilization"][BINDING] for r in runs
                    ],
                    "shared_limit_deployment_utilization_min": min(
                        r["utilization"][BINDING] for r in runs
                    ),
                    "shared_limit_deployment_rate_limited_per_n": [r["rate_limited"] for r in runs],
                    "shared_limit_deployment_rate_limited": sum(r["rate_limited"] for r in runs),
                    "shared_limit_deployment_failed_runs": sum(len(r["failed_runs"]) for r in runs),
                    "shared_limit_deployment_incomplete": sum(1 for r in runs if not r["complete"]),
                }
            )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shared_allowance")
    parser.add_argument("--redis", default=DEFAULT_REDIS, help="the shared allowance's Redis")
    parser.add_argument("--days", type=int, default=4, help="days backfilled in total per N")
    parser.add_argument("--prefect-db", choices=("auto", "postgresql", "sqlite"), default="auto")
    parser.add_argument(
        "--mode",
        choices=("cli", "deployment", "both"),
        default="both",
        help="CLI processes, flow runs of the deployment on process workers, or both",
    )
    args = parser.parse_args(argv)
    modes = MODES if args.mode == "both" else (args.mode,)
    say(
        f"shared allowance: N = 1, 2, 4 backfills ({', '.join(modes)}) on one sandbox, real "
        f"limits x{RATE_LIMIT_SCALE}, {args.redis}"
    )
    figures = shared_allowance(args.redis, args.days, args.prefect_db, modes)
    print(json.dumps(figures, separators=(",", ":")), flush=True)
    failed = figures.get("shared_limit_failed_runs", 0) + figures.get(
        "shared_limit_deployment_failed_runs", 0
    )
    return 0 if failed == 0 and not figures.get("shared_limit_deployment_incomplete") else 1


if __name__ == "__main__":
    raise SystemExit(main())
