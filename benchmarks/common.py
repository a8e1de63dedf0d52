"""Shared helpers: machine description, medians, worker subprocesses, a Prefect API server."""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

# A closed, fully listed range in the sandbox's history (all default symbols listed long before).
BENCH_START = "2024-03-04"
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT"]
EXCHANGES = ["binance", "coinbase", "okx"]


def machine() -> dict[str, Any]:
    """Cores and memory of this machine (the figures depend on both)."""
    mem_mb = 0
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem_mb = int(line.split()[1]) // 1024
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_mb": mem_mb,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def say(text: str) -> None:
    """Progress and tables go to stderr-like human output; the JSON line stays last on stdout."""
    print(text, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_worker(job: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one job of `benchmarks.worker` in a fresh process; returns its JSON result.

    The result carries the child's own peak RSS (`peak_rss_mb`, from getrusage in the child).
    """
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.worker", json.dumps(job)],
        env=full_env,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"benchmark worker {job.get('job')} failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[:3000]}"
        )
    return dict(json.loads(lines[-1]))


def run_benchmark(module: str, *args: str) -> dict[str, Any]:
    """Run another benchmark (`python -m benchmarks.<module> ...`) in its own process, its
    lines passed through as they come; returns its JSON line (the last line it prints)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    last = ""
    for line in proc.stdout:
        if line.startswith("{"):
            last = line
        else:
            say("  " + line.rstrip())
    if proc.wait() != 0 or not last:
        raise RuntimeError(f"benchmark {module} failed (exit {proc.returncode})")
    return dict(json.loads(last))


def children_peak_rss_mb() -> float:
    """Peak RSS of the largest child process waited for so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its waited-for children."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(f) for f in fields[11:15]) / ticks


PG_DSN = os.environ.get("CRYPTO_PIPELINE_BENCH_PG", "postgres@127.0.0.1:5432")


def _postgres(statement: str) -> None:
    """Run one statement on the server's `postgres` database (trust auth on loopback)."""
    import asyncio

    import asyncpg  # type: ignore[import-untyped]

    async def run() -> None:
        conn = await asyncpg.connect(f"postgresql://{PG_DSN}/postgres", timeout=5)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


@contextmanager
def prefect_database(kind: str) -> Iterator[tuple[str, str | None]]:
    """("postgresql" | "sqlite", connection URL or None for Prefect's SQLite default).

    `kind` "postgresql" uses a fresh database on PostgreSQL at 127.0.0.1:5432 (as a
    production server would); "auto" does so when it answers, else SQLite.
    """
    if kind in ("auto", "postgresql"):
        database = f"bench_prefect_{os.getpid()}"
        try:
            _postgres(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            _postgres(f"CREATE DATABASE {database}")
        except (OSError, ImportError) as exc:
            if kind == "postgresql":
                raise RuntimeError(f"PostgreSQL at {PG_DSN} is not usable: {exc}") from exc
        else:
            try:
                yield "postgresql", f"postgresql+asyncpg://{PG_DSN}/{database}"
            finally:
                _postgres(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            return
    yield "sqlite", None


@contextmanager
def prefect_server(database_url: str | None = None) -> Iterator[tuple[str, float, int]]:
    """A `prefect server start` subprocess on a free port with its own home (and SQLite
    database unless `database_url` names another).

    Yields (api_url, start-up seconds until /api/health answers, pid); stopped on exit.
    """
    port = free_port()
    home = tempfile.mkdtemp(prefix="bench-prefect-")
    env = {
        **os.environ,
        "PREFECT_HOME": home,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    if database_url:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    env.pop("PREFECT_API_URL", None)
    prefect = os.path.join(os.path.dirname(sys.executable), "prefect")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.perf_counter() - started > 120:
                raise RuntimeError("prefect server did not start within 120 s")
            time.sleep(0.2)
        yield url, time.perf_counter() - started, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(home, ignore_errors=True)
