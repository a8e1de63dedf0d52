"""N OS processes, each with its own clients, fetch candles from one sandbox enforcing the
exchanges' real limits (one egress address). With the allowance shared through Redis they draw
no 429 and use at least 85 % of the binding allowance (OKX history-candles, 20 requests per
rolling 2 s) for every N; with per-process limiters (`local`) the same run draws 429s.

Run as a script, the module is one such process (`worker`), or prints the figures for
N = 1, 2, 4 and both backends (`report [REDIS_URL]`).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from clients.ratelimit import LimitSpec
from clients.usage import allowance_utilization
from sandbox import SandboxConfig, SandboxServer

SECONDS = 5.0
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
START = datetime(2024, 1, 1, tzinfo=UTC)
# What the sandbox grants one address (sandbox.state), per binding endpoint.
ALLOWANCES = {
    "okx": LimitSpec("window", 20, 2.0),  # history-candles: 20 per rolling 2 s
    "coinbase": LimitSpec("bucket", 10, 15),  # 10 requests/s, bursts of 15
}


def binding_exchange(path: str) -> str | None:
    if path == "/api/v5/market/history-candles":
        return "okx"
    if path.startswith("/products/") and path.endswith("/candles"):
        return "coinbase"
    return None


@dataclass(frozen=True)
class Run:
    processes: int
    allowance: str
    rate_limited: dict[str, int]  # 429/418 answers the sandbox gave, per exchange
    requests: dict[str, int]  # accepted requests on the binding endpoints
    utilization: dict[str, float]
    failures: list[str]  # fetches that failed (not merely stopped at the end)

    def line(self) -> str:
        figures = ", ".join(
            f"{name} {self.utilization[name]:.3f} ({self.requests[name]} accepted, "
            f"{self.rate_limited[name]} refused)"
            for name in ALLOWANCES
        )
        return f"N={self.processes} {self.allowance}: {figures}"


def run_processes(processes: int, allowance: str, seconds: float = SECONDS) -> Run:
    """`processes` workers on one sandbox at once for `seconds`; what they drew and used."""
    env = {
        **os.environ,
        "CRYPTO_PIPELINE_ALLOWANCE": allowance,
        "CRYPTO_PIPELINE_ALLOWANCE_FALLBACK_PROCESSES": "0",
    }
    command = [sys.executable, __file__, "worker"]
    with SandboxServer(SandboxConfig(seed=7, rate_limits="real")) as server:
        workers = [
            subprocess.Popen(
                [*command, server.url, str(seconds), str(i)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                text=True,
            )
            for i in range(processes)
        ]
        try:
            for worker in workers:  # instruments resolved: the timed part starts together
                assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
            server.reset_stats()
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write("go\n")
                worker.stdin.flush()
            outputs = [worker.communicate(timeout=seconds + 60)[0] for worker in workers]
        finally:
            for worker in workers:
                worker.kill()
        stats = server.stats()
    assert all(worker.returncode == 0 for worker in workers), outputs
    sends: dict[str, list[tuple[float, float]]] = {name: [] for name in ALLOWANCES}
    failures: list[str] = []
    for output in outputs:
        result = json.loads(output.splitlines()[-1])
        failures += result["failures"]
        for path, sent, status in result["sends"]:
            name = binding_exchange(path)
            if name is not None and status == 200:
                sends[name].append((sent, 1.0))
    return Run(
        processes=processes,
        allowance=allowance,
        rate_limited={name: int(s["rate_limited"]) for name, s in stats.items()},
        requests={name: len(s) for name, s in sends.items()},
        utilization={
            name: round(allowance_utilization(sends[name], spec), 3)
            for name, spec in ALLOWANCES.items()
        },
        failures=failures,
    )


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2, 4])
def test_shared_allowance_draws_no_429_and_uses_the_allowance(
    redis_url: str, processes: int
) -> None:
    run = run_processes(processes, redis_url)
    print(run.line())
    assert run.rate_limited == {"binance": 0, "coinbase": 0, "okx": 0}
    assert run.failures == []
    assert run.utilization["okx"] >= 0.85
    assert run.utilization["coinbase"] >= 0.8


@pytest.mark.slow
def test_per_process_limiters_draw_429s_when_processes_share_an_address() -> None:
    run = run_processes(4, "local")
    print(run.line())
    assert run.rate_limited["okx"] > 0


# -- one worker process --------------------------------------------------------------------


async def work(url: str, seconds: float, index: int) -> dict[str, Any]:
    """Fetch 1m candles of every symbol from OKX and Coinbase at once for `seconds`."""
    import aiohttp

    from clients.base import BaseClient, RetryPolicy
    from clients.factory import make_client
    from models.enums import Exchange, Interval, MarketKind
    from models.settings import load_settings

    settings = load_settings()
    sends: list[tuple[str, float, int]] = []

    async def on_start(session: Any, context: Any, params: Any) -> None:
        context.sent = time.time()

    async def on_end(session: Any, context: Any, params: Any) -> None:
        sends.append((params.url.path, context.sent, params.response.status))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    trace.on_request_end.append(on_end)
    retry = RetryPolicy(attempts=8, base_delay=0.02, max_delay=0.5, timeout=15.0)

    async def fetch_days(client: BaseClient, symbol: str) -> None:
        day = START + timedelta(days=50 * index)
        while True:
            await client.ohlcv(symbol, Interval.M1, day, day + timedelta(days=1))
            day += timedelta(days=1)

    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        clients = [
            make_client(
                exchange,
                sandbox_url=url,
                session=session,
                retry=retry,
                allowance=settings.allowance,
                allowance_fallback_processes=settings.allowance_fallback_processes,
            )
            for exchange in (Exchange.OKX, Exchange.COINBASE)
        ]
        for client in clients:
            await client.instruments(MarketKind.SPOT)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        sends.clear()
        tasks = [
            asyncio.create_task(fetch_days(client, symbol))
            for client in clients
            for symbol in SYMBOLS
        ]
        await asyncio.sleep(seconds)
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    failures = [r for r in results if not isinstance(r, asyncio.CancelledError)]
    return {
        "sends": sends,
        "client_rate_limited": sum(c.stats.rate_limited for c in clients),
        "failures": [repr(f) for f in failures],
    }


def main(argv: list[str]) -> None:
    if argv[:1] == ["worker"]:
        url, seconds, index = argv[1], float(argv[2]), int(argv[3])
        print(json.dumps(asyncio.run(work(url, seconds, index))), flush=True)
        return
    if argv[:1] == ["report"]:
        redis_url = argv[1] if len(argv) > 1 else "redis://127.0.0.1:6379/15"
        for allowance in (redis_url, "local"):
            for processes in (1, 2, 4):
                print(run_processes(processes, allowance).line(), flush=True)
        return
    raise SystemExit(f"usage: {sys.argv[0]} worker URL SECONDS INDEX | report [REDIS_URL]")


if __name__ == "__main__":
    main(sys.argv[1:])
