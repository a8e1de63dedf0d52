"""Candle pages from cached encoded windows: byte-identical to the uncached path, never stale."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import orjson
import pytest

from sandbox import SandboxServer, binance, coinbase, okx, pages
from sandbox.common import backward, drop_days, forward
from sandbox.listing import DAY_MS, HOUR_MS, Listing
from sandbox.market import MINUTE_MS, Bar
from sandbox.pages import Keep, RowFormat

from .helpers import FakeClock, fetch, listing, ms

MakeSandbox = Callable[..., SandboxServer]
DAY = ms("2024-03-10") // DAY_MS
NOW = ms("2024-03-12T13:47:23.456")  # inside a day: the last window is open
FORMATS = {
    "binance spot": (binance.SPOT_ROWS, "binance", "spot"),
    "binance futures": (binance.FUTURES_ROWS, "binance", "perp"),
    "okx": (okx.CANDLE_ROWS, "okx", "spot"),
    "okx swap": (okx.CANDLE_ROWS, "okx", "perp"),
    "coinbase": (coinbase.CANDLE_ROWS, "coinbase", "spot"),
}
BARS = {
    "1m": Bar(MINUTE_MS),
    "15m +5:45": Bar(15 * MINUTE_MS, -(5 * HOUR_MS + 45 * MINUTE_MS)),
    "1h": Bar(HOUR_MS),
    "4h UTC+8": Bar(4 * HOUR_MS, -8 * HOUR_MS),
    "1d UTC+8": Bar(DAY_MS, -8 * HOUR_MS),
    "3d": Bar(3 * DAY_MS),
    "1w": Bar(7 * DAY_MS, 4 * DAY_MS),
}


def keep_all(ts: np.ndarray) -> np.ndarray:
    return drop_days(ts, set())


def drop_two_days(ts: np.ndarray) -> np.ndarray:
    return drop_days(ts, {DAY + 1, DAY + 2})  # a closed day and the open one


def reference(
    fmt: RowFormat, item: Listing, bar: Bar, window: tuple[int, int, int, int, bool], keep: Keep
) -> bytes:
    """The page as the handlers built it before the cache: select, withhold, format, encode."""
    start, end, limit, now, last = window
    c = (backward if last else forward)(7, item, bar, start, end, limit, now)
    c = c.take(keep(c.ts))
    rows = fmt.rows(item, bar, c, now)
    return orjson.dumps(rows[::-1] if fmt.newest_first else rows)


def cached(
    fmt: RowFormat, item: Listing, bar: Bar, window: tuple[int, int, int, int, bool], keep: Keep
) -> bytes:
    start, end, limit, now, last = window
    return orjson.dumps(pages.page(7, item, bar, fmt, start, end, limit, now, last=last, keep=keep))


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("bar_name", BARS)
@pytest.mark.parametrize("keep", [keep_all, drop_two_days])
def test_pages_match_the_uncached_path(name: str, bar_name: str, keep: Keep) -> None:
    fmt, exchange, kind = FORMATS[name]
    item = listing(exchange, "BTCUSD" if exchange == "coinbase" else "BTCUSDT", kind)
    bar = BARS[bar_name]
    start = DAY * DAY_MS - 7 * HOUR_MS - 13 * MINUTE_MS
    midnight = (DAY + 3) * DAY_MS
    cases = [
        (start, start + 3 * DAY_MS, 1000, NOW, False),
        (start, 2**62, 1500, NOW, False),
        (0, 2**62, 500, NOW, True),
        (start, NOW - 3 * HOUR_MS, 300, NOW, True),
        (start, 2**62, 100, midnight, True),
        (start, 2**62, 7, midnight - 1, True),
        (start + 5 * MINUTE_MS, start + 6 * MINUTE_MS, 10, NOW, False),
    ]
    for lo, hi, limit, now, last in cases:
        limit = min(limit, max(2, 4 * DAY_MS // bar.length_ms))  # a few days of data at most
        window = (lo, hi, limit, now, last)
        assert cached(fmt, item, bar, window, keep) == reference(fmt, item, bar, window, keep)


async def test_open_day_is_never_served_stale(make_sandbox: MakeSandbox) -> None:
    clock = FakeClock(ms("2024-03-12T23:58:30"))
    server = make_sandbox(clock=clock)
    start = ms("2024-03-12T23:50")
    query = {"symbol": "ETHUSDT", "interval": "1m", "startTime": start, "limit": 20}
    item, bar = listing("binance", "ETHUSDT"), binance.BINANCE_BARS["1m"]
    seen = []
    for step in (0, 45, 60, 600, -660):  # through midnight, then back before it
        clock.advance(step)
        status, _, rows = await fetch(f"{server.url}/api/v3/klines", query)
        window = (start, 2**62, 20, clock.now_ms, False)
        assert status == 200
        assert orjson.dumps(rows) == reference(binance.SPOT_ROWS, item, bar, window, keep_all)
        seen.append(rows)
    assert seen[0][-1] != seen[1][-1]  # the unfinished minute moved on
    assert seen[4] == seen[1]  # the clock set back: the unfinished day again, not the cached one


async def test_closed_windows_come_from_the_cache(sandbox_url: str) -> None:
    query = {"symbol": "SOLUSDT", "interval": "1m", "startTime": ms("2024-02-03"), "limit": 1000}
    _, _, first = await fetch(f"{sandbox_url}/api/v3/klines", query)
    hits = pages._closed.cache_info().hits
    _, _, again = await fetch(f"{sandbox_url}/api/v3/klines", query)
    assert again == first and pages._closed.cache_info().hits == hits + 1
    assert pages._closed.cache_info().maxsize == pages.CACHED_WINDOWS
