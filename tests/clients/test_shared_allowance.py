"""The shared allowance in Redis: windows, buckets, leases, the shared pause, header alignment,
selection by setting, and Binance's firewall 403 treated as a rate limit."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from clients.allowance import (
    AllowanceUnavailable,
    InProcessLimiter,
    LocalAllowance,
)
from clients.allowance_choice import allowance_backend
from clients.base import Request, Retryable, RetryPolicy
from clients.binance import BinanceClient
from clients.factory import make_client
from clients.protocol import RateLimited
from clients.ratelimit import LimitSpec, SlidingWindow
from clients.redis_allowance import RedisAllowance, redact
from clients.usage import allowance_utilization
from models.enums import Exchange
from models.errors import InputError
from models.settings import load_settings

Backends = Callable[[], RedisAllowance]
KEY = ("okx", "/api/v5/market/history-candles", "http://sandbox")
GATE = ("okx", "gate", "http://sandbox")


def window(backend: RedisAllowance, limit: float, period: float, margin: float = 0.0) -> Any:
    return backend.limiter(KEY, LimitSpec("window", limit, period, margin=margin), GATE)


async def took(awaitable: Any) -> float:
    began = time.monotonic()
    await awaitable
    return time.monotonic() - began


# -- windows -------------------------------------------------------------------------------


async def test_window_charges_each_request_its_cost(redis_backend: Backends) -> None:
    limiter = window(redis_backend(), 10, 1.0)
    await limiter.acquire(4)
    await limiter.acquire(4)
    assert await took(limiter.acquire(2)) < 0.1  # 10 of 10
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(limiter.acquire(1), 0.3)


async def test_slot_is_held_from_send_until_a_window_after_the_answer(
    redis_backend: Backends,
) -> None:
    a, b = window(redis_backend(), 10, 0.5), window(redis_backend(), 10, 0.5)  # two processes
    first = await a.acquire(5)
    second = await b.acquire(5)
    began = time.monotonic()
    await asyncio.sleep(0.3)
    await a.finished(first)  # answered at 0.3: leaves at 0.8
    await asyncio.sleep(0.1)
    await b.finished(second)  # answered at 0.4: leaves at 0.9
    await a.acquire(5)
    assert 0.75 <= time.monotonic() - began < 1.0


async def test_an_answer_after_the_lease_still_counts_a_window(redis_backend: Backends) -> None:
    limiter = window(redis_backend(), 1, 0.3)
    ticket = await limiter.acquire(1)
    await asyncio.sleep(0.4)  # the lease ran out before the answer came
    assert await took(limiter.acquire(1)) < 0.05
    await limiter.finished(ticket)  # the late answer books the request again
    assert 0.25 < await took(limiter.acquire(1)) < 0.5


HOLDER = """
import asyncio, sys
from clients.ratelimit import LimitSpec
from clients.redis_allowance import RedisAllowance

async def main() -> None:
    backend = RedisAllowance(sys.argv[1], namespace=sys.argv[2])
    limiter = backend.limiter(
        ("okx", "/api/v5/market/history-candles", "http://sandbox"),
        LimitSpec("window", 10, 1.0, margin=0.0),
        ("okx", "gate", "http://sandbox"),
    )
    await limiter.acquire(10)
    print("held", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_a_killed_holder_starves_others_no_longer_than_one_window(
    redis_backend: Backends,
) -> None:
    backend = redis_backend()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, backend.url, backend.namespace],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        line = await asyncio.get_running_loop().run_in_executor(None, holder.stdout.readline)
        assert line.strip() == "held"
        holder.kill()  # holds the whole window and never answers
        holder.wait(timeout=10)
        waited = await took(window(backend, 10, 1.0).acquire(1))
    finally:
        holder.kill()
    # one window (1 s) from the holder's acquisition, not the 60 s it would hold; the margin
    # above it is the polling step plus a loaded machine's scheduling
    assert 0.5 < waited < 1.6


async def test_concurrent_processes_never_exceed_the_window(redis_backend: Backends) -> None:
    capacity, span = 20.0, 0.3
    rng = random.Random(3)
    done: list[tuple[float, float, float]] = []  # (sent, answered, cost)

    async def worker(limiter: Any) -> None:
        for _ in range(6):
            cost = float(rng.randint(1, 3))
            ticket = await limiter.acquire(cost)
            sent = time.time()
            await asyncio.sleep(rng.uniform(0, 0.03))
            answered = time.time()
            await limiter.finished(ticket)
            done.append((sent, answered, cost))

    limiters = [window(redis_backend(), capacity, span) for _ in range(3)]
    await asyncio.gather(*(worker(limiters[i % 3]) for i in range(12)))
    for sent, _, _ in done:
        held = sum(c for s, a, c in done if s <= sent < a + span)
        assert held <= capacity
    # Waiters take room as it frees (answers take up to 10 % of the window here).
    allowance = LimitSpec("window", capacity, span)
    assert allowance_utilization([(s, c) for s, _, c in done], allowance) > 0.4


async def test_header_alignment_books_usage_of_others(redis_backend: Backends) -> None:
    limiter = window(redis_backend(), 10, 1.0)
    ticket = await limiter.acquire(2)
    await limiter.finished(ticket)
    await limiter.observe_used(8)  # the exchange counted 6 more than we sent
    assert await took(limiter.acquire(2)) < 0.1
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(limiter.acquire(1), 0.3)
    await limiter.observe_used(3)  # lower counts never lower the accounting
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(limiter.acquire(1), 0.2)


# -- buckets and the pause -----------------------------------------------------------------


async def test_bucket_bursts_then_paces_across_processes(redis_backend: Backends) -> None:
    spec = LimitSpec("bucket", 20, 3)
    buckets = [redis_backend().limiter(("coinbase", "public", "u"), spec, GATE) for _ in range(2)]
    began = time.monotonic()
    for i in range(11):
        await buckets[i % 2].acquire(1)
    # 3 at once, then 8 at 20/s.
    assert 0.38 <= time.monotonic() - began < 0.6


async def test_pause_holds_every_process(redis_backend: Backends) -> None:
    one, other = redis_backend(), redis_backend()
    await one.limiter(GATE, None, GATE).pause(0.5)
    gate = other.limiter(GATE, None, GATE)
    assert 0.3 < await gate.paused_for() <= 0.5
    assert 0.4 < await took(window(other, 10, 1.0).acquire(1)) < 0.7
    await one.limiter(GATE, None, GATE).pause(0.1)  # never shortens a longer pause
    await other.limiter(GATE, None, GATE).pause(0.3)
    assert await took(gate.acquire(0)) >= 0.25


# -- clients on a shared allowance ---------------------------------------------------------


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[..., Any]]:
    """`await scripted(answer)`: a local server answering the n-th request with `answer(n)`."""
    runners: list[web.AppRunner] = []

    async def start(answer: Callable[[int], web.Response]) -> tuple[str, list[float]]:
        arrivals: list[float] = []

        async def handle(request: web.Request) -> web.Response:
            arrivals.append(time.monotonic())
            return answer(len(arrivals))

        app = web.Application()
        app.router.add_get("/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}", arrivals

    yield start
    for runner in runners:
        await runner.cleanup()


FIREWALL_PAGE = "<html><head><title>403 Forbidden</title></head><body>Forbidden</body></html>"
KLINES = Request("api", "/api/v3/klines", {"symbol": "BTCUSDT"}, symbol="BTCUSDT", cost=2)
FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, timeout=5.0, firewall_pause=0.6)


async def test_firewall_403_pauses_binance_for_every_process(
    redis_backend: Backends, scripted: Callable[..., Any]
) -> None:
    def answer(n: int) -> web.Response:
        if n == 1:
            return web.Response(status=403, text=FIREWALL_PAGE, content_type="text/html")
        return web.json_response([])

    url, arrivals = await scripted(answer)
    a = make_client(Exchange.BINANCE, sandbox_url=url, retry=FAST, allowance=redis_backend())
    b = make_client(Exchange.BINANCE, sandbox_url=url, retry=FAST, allowance=redis_backend())
    async with a, b:

        async def later() -> list[Any]:
            await asyncio.sleep(0.2)
            return await asyncio.gather(*(b.get(KLINES) for _ in range(3)))

        first, rest = await asyncio.gather(a.get(KLINES), later())
    assert first == [] and rest == [[], [], []]
    assert a.stats.rate_limited == 1 and a.stats.retries == 1
    assert all(t - arrivals[0] >= 0.55 for t in arrivals[1:])


async def test_firewall_403_is_never_retried_in_a_tight_loop(scripted: Callable[..., Any]) -> None:
    url, arrivals = await scripted(
        lambda n: web.Response(status=403, text=FIREWALL_PAGE, content_type="text/html")
    )
    retry = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02, firewall_pause=0.3)
    async with make_client(Exchange.BINANCE, sandbox_url=url, retry=retry) as client:
        with pytest.raises(RateLimited) as info:
            await client.get(KLINES)
    assert info.value.status == 403 and "firewall" in str(info.value)
    assert len(arrivals) == 3
    assert all(b - a >= 0.28 for a, b in itertools.pairwise(arrivals))


def test_firewall_403_classifies_as_rate_limited() -> None:
    client = BinanceClient(retry=RetryPolicy(firewall_pause=45.0))
    with pytest.raises(Retryable) as limited:
        client.classify(KLINES, 403, {}, FIREWALL_PAGE.encode())
    assert isinstance(limited.value.error, RateLimited) and limited.value.retry_after == 45.0
    with pytest.raises(Retryable) as told:
        client.classify(KLINES, 403, {"Retry-After": "12"}, b"")
    assert told.value.retry_after == 12.0


async def test_binance_aligns_the_shared_window_with_the_weight_header(
    redis_backend: Backends, scripted: Callable[..., Any]
) -> None:
    url, arrivals = await scripted(
        lambda n: web.json_response([], headers={"X-MBX-USED-WEIGHT-1M": "50"})
    )
    retry = RetryPolicy(attempts=2, base_delay=0.01, timeout=5.0)
    # Scaled to 1 %: 60 spot weight per minute, 58 of it used by the client.
    a, b = (
        make_client(
            Exchange.BINANCE, sandbox_url=url, retry=retry, rate_limit_scale=0.01, allowance=be
        )
        for be in (redis_backend(), redis_backend())
    )
    async with a, b:
        await a.get(KLINES)  # another host spent 48 more this minute: 50 in all
        for _ in range(4):
            await b.get(KLINES)  # 58
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(b.get(KLINES), 0.5)
    assert len(arrivals) == 5


# -- selection -----------------------------------------------------------------------------


def test_allowance_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().allowance == "local"
    monkeypatch.setenv("CRYPTO_PIPELINE_ALLOWANCE", "redis://127.0.0.1:6379/0")
    assert load_settings().allowance == "redis://127.0.0.1:6379/0"
    assert load_settings(allowance=" LOCAL/4 ").allowance == "local/4"
    with pytest.raises(InputError, match="CRYPTO_PIPELINE_ALLOWANCE"):
        load_settings(allowance="memcached://127.0.0.1")
    with pytest.raises(InputError, match="CRYPTO_PIPELINE_ALLOWANCE"):
        load_settings(allowance="local/0")


def test_local_share_divides_every_allowance() -> None:
    assert isinstance(allowance_backend(None), LocalAllowance)
    backend = allowance_backend("local/4")
    assert isinstance(backend, LocalAllowance) and backend.processes == 4
    limiter = backend.limiter(("x", "divided", "u"), LimitSpec("window", 20, 2.0), GATE)
    assert isinstance(limiter, InProcessLimiter)
    assert isinstance(limiter.limiter, SlidingWindow) and limiter.limiter.capacity == 5


def test_unreachable_redis_is_an_error_at_start_naming_the_setting() -> None:
    with pytest.raises(AllowanceUnavailable) as info:
        make_client(Exchange.OKX, allowance="redis://:s3cret@127.0.0.1:1/0")
    message = str(info.value)
    assert "CRYPTO_PIPELINE_ALLOWANCE=redis://:***@127.0.0.1:1/0" in message
    assert "s3cret" not in message and "\n" not in message
    assert isinstance(info.value, InputError)  # the CLI prints it in one line


def test_unreachable_redis_with_fallback_runs_on_a_logged_share(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="clients.allowance"):
        client = make_client(
            Exchange.OKX, allowance="redis://127.0.0.1:1/1", allowance_fallback_processes=3
        )
    assert isinstance(client.allowance, LocalAllowance) and client.allowance.processes == 3
    assert "falling back to local/3" in caplog.text and "127.0.0.1:1" in caplog.text


def test_redis_backend_is_checked_once_per_process(redis_url: str) -> None:
    one = make_client(Exchange.OKX, allowance=redis_url)
    other = make_client(Exchange.COINBASE, allowance=redis_url)
    assert isinstance(one.allowance, RedisAllowance) and one.allowance is other.allowance


def test_redact() -> None:
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact("redis://user:pw@host:6380/2") == "redis://user:***@host:6380/2"
    assert redact("rediss://:pw@host/0") == "rediss://:***@host/0"


def test_utilization() -> None:
    window_spec = LimitSpec("window", 20, 2.0)
    sends = [(0.0, 1.0)] * 20 + [(2.0, 1.0)] * 20
    assert allowance_utilization(sends, window_spec) == pytest.approx(40 / 40)
    bucket = LimitSpec("bucket", 10, 15)
    assert allowance_utilization([(t / 10, 1.0) for t in range(50)], bucket) == pytest.approx(
        50 / (15 + 49)
    )
    assert allowance_utilization([], bucket) == 0.0
