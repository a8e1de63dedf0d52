"""Client-side pacing against the sandbox with the exchanges' real limits: zero 429s."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from clients.base import RetryPolicy
from clients.factory import make_client
from models.enums import Exchange, Interval, MarketKind

START = datetime(2024, 3, 1, tzinfo=UTC)

# Fast retries for tests; Retry-After from the sandbox is still honoured.
TEST_RETRY = RetryPolicy(attempts=8, base_delay=0.02, max_delay=0.5, timeout=15.0)


async def test_okx_history_candles_stay_under_20_per_2s(make_sandbox) -> None:
    server = make_sandbox(seed=7, rate_limits="real")
    # Two clients share the process-wide limiter of the exchange.
    a = make_client(Exchange.OKX, sandbox_url=server.url, retry=TEST_RETRY)
    b = make_client(Exchange.OKX, sandbox_url=server.url, retry=TEST_RETRY)
    async with a, b:
        await a.resolve("BTCUSDT", MarketKind.SPOT)
        await b.resolve("BTCUSDT", MarketKind.SPOT)
        began = time.monotonic()
        frames = await asyncio.gather(
            a.ohlcv("BTCUSDT", Interval.M1, START, START + timedelta(days=2)),
            b.ohlcv("ETHUSDT", Interval.M1, START, START + timedelta(days=2)),
            a.ohlcv("SOLUSDT", Interval.M1, START, START + timedelta(days=2)),
        )
        elapsed = time.monotonic() - began
    stats = server.stats()["okx"]
    assert stats["rate_limited"] == 0
    assert a.stats.rate_limited == b.stats.rate_limited == 0
    assert [f.height for f in frames] == [2880, 2880, 2880]
    # 30 requests at 20 per 2 s: the second window must wait for the first to roll over.
    assert stats["by_path"]["/api/v5/market/history-candles"] == 30
    assert elapsed >= 2.0


async def test_coinbase_bucket_bursts_then_paces(make_sandbox) -> None:
    server = make_sandbox(seed=7, rate_limits="real")
    async with make_client(Exchange.COINBASE, sandbox_url=server.url, retry=TEST_RETRY) as c:
        await c.resolve("BTCUSDT", MarketKind.SPOT)
        began = time.monotonic()
        frame = await c.ohlcv("BTCUSDT", Interval.M1, START, START + timedelta(days=7))
        elapsed = time.monotonic() - began
    stats = server.stats()["coinbase"]
    assert stats["rate_limited"] == 0 and c.stats.rate_limited == 0
    assert c.stats.by_endpoint["/products/BTC-USDT/candles"] == 34
    assert frame.height > 7 * 1430
    # 11 at once, then 23 more at ~9.5/s; never faster than the 10/s + 15 burst allowance.
    assert 23 / 10 <= elapsed < 23 / 9.5 + 1.5


async def test_binance_weight_limit_blocks_before_the_exchange_does(make_sandbox) -> None:
    # Scaled to 1 % on both sides: 60 spot weight per minute (exchangeInfo 20, klines 2).
    server = make_sandbox(seed=7, rate_limits="real", rate_limit_scale=0.01)
    c = make_client(
        Exchange.BINANCE, sandbox_url=server.url, retry=TEST_RETRY, rate_limit_scale=0.01
    )
    async with c:
        with pytest.raises(TimeoutError):
            # 30 pages of 1000 minutes need 60 weight more than the 38 left this minute.
            await asyncio.wait_for(
                c.ohlcv("BTCUSDT", Interval.M1, START, START + timedelta(minutes=30_000)), 2.0
            )
    stats = server.stats()["binance"]
    assert stats["rate_limited"] == 0
    assert stats["weight"] <= 58
    assert stats["by_path"]["/api/v3/klines"] == 19  # 20 + 19 * 2 = 58 = 97 % of 60
