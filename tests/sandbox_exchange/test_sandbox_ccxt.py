"""Well-known clients read the sandbox unchanged: ccxt's async binance, okx, coinbaseexchange."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

import ccxt.async_support as ccxt
import numpy as np
import pytest

from sandbox import market
from sandbox.common import trim_text
from sandbox.listing import DAY_MS, HOUR_MS
from sandbox.market import Bar

from .helpers import listing, ms

SINCE = ms("2024-02-28T20:00:00")


def point_at(exchange: Any, url: str) -> Any:
    """Replace every API host of a ccxt exchange by the sandbox URL."""

    def swap(value: Any) -> Any:
        if isinstance(value, str):
            return re.sub(r"^https://[^/]+", url, value)
        if isinstance(value, dict):
            return {key: swap(item) for key, item in value.items()}
        return value

    exchange.urls["api"] = swap(exchange.urls["api"])
    return exchange


@pytest.fixture
async def binance(sandbox_url: str) -> AsyncIterator[Any]:
    client = point_at(ccxt.binance({"options": {"fetchMarkets": {"types": ["spot", "linear"]}}}),
                      sandbox_url)  # fmt: skip
    yield client
    await client.close()


@pytest.fixture
async def okx(sandbox_url: str) -> AsyncIterator[Any]:
    client = point_at(ccxt.okx({"options": {"fetchMarkets": {"types": ["spot", "swap"]}}}),
                      sandbox_url)  # fmt: skip
    yield client
    await client.close()


@pytest.fixture
async def coinbase(sandbox_url: str) -> AsyncIterator[Any]:
    client = point_at(ccxt.coinbaseexchange(), sandbox_url)
    yield client
    await client.close()


def expected_ohlcv(exchange: str, symbol: str, bar: Bar, start: int, end: int) -> list[list[float]]:
    item = listing(exchange, symbol)
    c = market.candles(7, item, bar, start, end, end)
    tick = 10**item.tick_decimals
    lot_m, lot_d = item.lot_parts
    return [
        [t, o / tick, h / tick, lo / tick, cl / tick, round(v * lot_m / 10**lot_d, lot_d)]
        for t, o, h, lo, cl, v in zip(c.ts.tolist(), c.open.tolist(), c.high.tolist(),
                                      c.low.tolist(), c.close.tolist(), c.volume.tolist(),
                                      strict=True)
    ]  # fmt: skip


def assert_same(got: list[list[float]], want: list[list[float]]) -> None:
    assert [row[0] for row in got] == [row[0] for row in want]
    assert np.allclose(np.array(got, dtype=float), np.array(want, dtype=float), rtol=1e-12)


async def test_ccxt_binance_ohlcv_across_the_documented_gap(binance: Any) -> None:
    got = await binance.fetch_ohlcv("BTC/USDT", "15m", since=SINCE, limit=40)
    want = expected_ohlcv("binance", "BTCUSDT", Bar(15 * 60_000), SINCE, SINCE + 42 * 900_000)
    assert len(got) == 40
    assert_same(got, want[:40])
    assert ms("2024-02-29T03:00:00") not in [row[0] for row in got]
    markets = await binance.load_markets()
    assert markets["BTC/USDT:USDT"]["id"] == "BTCUSDT" and markets["BTC/USDT"]["spot"]


async def test_ccxt_binance_funding_history(binance: Any) -> None:
    got = await binance.fetch_funding_rate_history("SOL/USDT:USDT", since=ms("2024-05-31"),
                                                   limit=10)  # fmt: skip
    f = market.funding(7, listing("binance", "SOLUSDT", "perp"), ms("2024-05-31"),
                       ms("2024-05-31") + 10 * 8 * HOUR_MS)  # fmt: skip
    assert [row["timestamp"] for row in got] == f.time[:10].tolist()
    assert [row["fundingRate"] for row in got] == [round(x, 8) for x in f.rate[:10].tolist()]


async def test_ccxt_okx_ohlcv_and_funding(okx: Any) -> None:
    got = await okx.fetch_ohlcv("ETH/USDT", "1h", since=SINCE, limit=100)
    want = expected_ohlcv("okx", "ETHUSDT", Bar(HOUR_MS), SINCE, SINCE + 100 * HOUR_MS)
    assert len(got) == 100
    assert_same(got, want)
    daily = await okx.fetch_ohlcv("ETH/USDT", "1d", since=ms("2024-03-01"), limit=3)
    assert [row[0] for row in daily] == [ms("2024-03-01") + i * DAY_MS for i in range(3)]
    now = int(time.time() * 1000)
    since = now - 20 * DAY_MS
    rates = await okx.fetch_funding_rate_history("BTC/USDT:USDT", since=since, limit=100)
    item = listing("okx", "BTCUSDT", "perp")
    f = market.funding(7, item, since, now)
    assert [row["timestamp"] for row in rates] == f.time.tolist()
    assert [row["fundingRate"] for row in rates] == [
        float(trim_text(x, 16)) for x in f.rate.tolist()
    ]


async def test_ccxt_okx_open_interest_history(okx: Any) -> None:
    now = int(time.time() * 1000)
    since = now // HOUR_MS * HOUR_MS - 48 * HOUR_MS
    rows = await okx.fetch_open_interest_history("BTC/USDT:USDT", "1h", since=since, limit=10)
    assert [row["timestamp"] for row in rows] == [since + i * HOUR_MS for i in range(10)]
    assert all(row["openInterestValue"] > 0 for row in rows)


async def test_ccxt_coinbaseexchange_ohlcv(coinbase: Any) -> None:
    got = await coinbase.fetch_ohlcv("BTC/USD", "5m", since=SINCE, limit=300)
    want = expected_ohlcv("coinbase", "BTCUSD", Bar(300_000), SINCE, SINCE + 300 * 300_000)
    assert len(got) == 300
    assert_same(got, want)
    with pytest.raises(ccxt.BadSymbol):
        await coinbase.fetch_ohlcv("BNB/USDT", "1h", since=SINCE, limit=5)
