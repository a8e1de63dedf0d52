"""Binance spot and USD-M endpoints of the sandbox: data, paging, limits, errors, headers."""

from __future__ import annotations

import itertools
import time

import pytest

from sandbox import market
from sandbox.common import fixed
from sandbox.listing import DAY_MS, HOUR_MS
from sandbox.market import MINUTE_MS, Bar

from .helpers import FakeClock, expected_minutes, fetch, listing, ms

START = ms("2024-01-01")


async def test_spot_klines_match_the_generator(sandbox_url: str) -> None:
    status, headers, rows = await fetch(
        f"{sandbox_url}/api/v3/klines",
        {"symbol": "BTCUSDT", "interval": "1m", "startTime": START, "limit": 1000},
    )
    assert status == 200 and len(rows) == 1000
    want = expected_minutes("binance", "BTCUSDT", START, START + 1000 * MINUTE_MS)
    assert [r[0] for r in rows] == want.ts.tolist()
    assert [r[4] for r in rows] == fixed(want.close, 2, 8)
    assert [r[8] for r in rows] == want.trades.tolist()
    assert all(r[6] == r[0] + MINUTE_MS - 1 and r[11] == "0" and len(r) == 12 for r in rows)
    assert headers["X-MBX-USED-WEIGHT-1M"].isdigit() and "x-mbx-used-weight" in {
        k.lower() for k in headers
    }


async def test_same_candle_from_two_windows(sandbox_url: str) -> None:
    target = START + 777 * MINUTE_MS
    seen = []
    for start, limit in ((target - 500 * MINUTE_MS, 1000), (target, 1), (target - MINUTE_MS, 3)):
        _, _, rows = await fetch(
            f"{sandbox_url}/api/v3/klines",
            {"symbol": "XRPUSDT", "interval": "1m", "startTime": start, "limit": limit},
        )
        seen.append(next(row for row in rows if row[0] == target))
    assert seen[0] == seen[1] == seen[2]
    for after in (target + MINUTE_MS, target + 200 * MINUTE_MS):
        _, _, body = await fetch(
            f"{sandbox_url}/api/v5/market/history-candles",
            {"instId": "XRP-USDT", "after": after, "limit": 300},
        )
        seen.append(next(row for row in body["data"] if int(row[0]) == target))
    assert seen[3] == seen[4]


async def test_klines_bounds_inclusive_and_ascending(sandbox_url: str) -> None:
    end = START + 10 * HOUR_MS
    _, _, rows = await fetch(
        f"{sandbox_url}/api/v3/klines",
        {"symbol": "ETHUSDT", "interval": "1h", "startTime": START, "endTime": end},
    )
    assert [r[0] for r in rows] == [START + i * HOUR_MS for i in range(11)]
    _, _, rows = await fetch(
        f"{sandbox_url}/api/v3/klines",
        {"symbol": "ETHUSDT", "interval": "1h", "endTime": end, "limit": 3},
    )
    assert [r[0] for r in rows] == [end - 2 * HOUR_MS, end - HOUR_MS, end]
    # Microsecond inputs are accepted.
    _, _, rows = await fetch(
        f"{sandbox_url}/api/v3/klines",
        {"symbol": "ETHUSDT", "interval": "1h", "startTime": START * 1000, "limit": 2},
    )
    assert [r[0] for r in rows] == [START, START + HOUR_MS]


async def test_klines_limits_default_and_clamp(sandbox_url: str) -> None:
    base = {"symbol": "SOLUSDT", "interval": "1m", "startTime": START}
    _, _, rows = await fetch(f"{sandbox_url}/api/v3/klines", base)
    assert len(rows) == 500
    _, _, rows = await fetch(f"{sandbox_url}/api/v3/klines", {**base, "limit": 5000})
    assert len(rows) == 1000
    _, _, rows = await fetch(f"{sandbox_url}/fapi/v1/klines", {**base, "limit": 5000})
    assert len(rows) == 1500


async def test_latest_kline_is_unfinished(sandbox_url: str) -> None:
    for path in ("/api/v3/klines", "/fapi/v1/klines"):
        for interval in ("1m", "1h", "1d"):
            _, _, rows = await fetch(
                f"{sandbox_url}{path}", {"symbol": "BTCUSDT", "interval": interval, "limit": 2}
            )
            now = int(time.time() * 1000)
            assert rows[-1][6] >= now - 1000, (path, interval)  # closeTime not yet passed
            assert rows[0][6] < now


async def test_coarse_klines_equal_aggregated_minutes(sandbox_url: str) -> None:
    day = ms("2024-02-29")
    _, _, hours = await fetch(
        f"{sandbox_url}/api/v3/klines",
        {"symbol": "BTCUSDT", "interval": "1h", "startTime": day, "endTime": day + DAY_MS - 1},
    )
    _, _, minutes = await fetch(
        f"{sandbox_url}/api/v3/klines",
        {"symbol": "BTCUSDT", "interval": "1m", "startTime": day, "endTime": day + DAY_MS - 1,
         "limit": 1000},
    )  # fmt: skip
    _, _, more = await fetch(
        f"{sandbox_url}/api/v3/klines",
        {"symbol": "BTCUSDT", "interval": "1m", "startTime": minutes[-1][0] + 1,
         "endTime": day + DAY_MS - 1, "limit": 1000},
    )  # fmt: skip
    minutes += more
    assert len(minutes) == 1440 - 30  # the documented maintenance gap
    by_hour: dict[int, list[list[object]]] = {}
    for row in minutes:
        by_hour.setdefault(int(row[0]) // HOUR_MS * HOUR_MS, []).append(row)
    assert [h[0] for h in hours] == sorted(by_hour)
    for h in hours:
        group = by_hour[h[0]]
        assert h[1] == group[0][1] and h[4] == group[-1][4]
        assert float(h[2]) == max(float(r[2]) for r in group)
        assert float(h[3]) == min(float(r[3]) for r in group)
        assert h[8] == sum(int(r[8]) for r in group)
        assert float(h[5]) == pytest.approx(sum(float(r[5]) for r in group), rel=1e-12)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"symbol": "NOPEUSDT", "interval": "1m"}, -1121),
        ({"symbol": "BTCUSDT", "interval": "7m"}, -1120),
        ({"interval": "1m"}, -1102),
        ({"symbol": "BTCUSDT"}, -1102),
        ({"symbol": "BTCUSDT", "interval": "1m", "limit": "ten"}, -1100),
        ({"symbol": "BTCUSDT", "interval": "1m", "startTime": "-5"}, -1100),
        ({"symbol": "btc/usdt", "interval": "1m"}, -1100),
        ({"symbol": "BTCUSDT", "interval": "1m", "foo": "1"}, -1104),
        ({"symbol": "BTCUSDT", "interval": "1m", "startTime": 20, "endTime": 10}, -1023),
    ],
)
async def test_kline_errors(sandbox_url: str, params: dict[str, object], code: int) -> None:
    status, headers, body = await fetch(f"{sandbox_url}/api/v3/klines", params)
    assert status == 400
    assert body["code"] == code and isinstance(body["msg"], str)
    assert "X-MBX-USED-WEIGHT-1M" in headers


async def test_error_messages_are_the_real_ones(sandbox_url: str) -> None:
    _, _, body = await fetch(f"{sandbox_url}/api/v3/klines", {"symbol": "X1", "interval": "1m"})
    assert body == {"code": -1121, "msg": "Invalid symbol."}
    _, _, body = await fetch(
        f"{sandbox_url}/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1s"}
    )
    assert body == {"code": -1120, "msg": "Invalid interval."}
    _, _, body = await fetch(f"{sandbox_url}/api/v3/klines", {"interval": "1m"})
    assert body["msg"] == (
        "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
    )


async def test_spot_and_futures_weights(make_sandbox) -> None:  # type: ignore[no-untyped-def]
    server = make_sandbox(clock=FakeClock())  # a fixed clock: the minute cannot roll over
    url = server.url
    _, headers, _ = await fetch(f"{url}/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1d"})
    assert headers["X-MBX-USED-WEIGHT-1M"] == "2"
    _, headers, _ = await fetch(f"{url}/api/v3/exchangeInfo")
    assert headers["X-MBX-USED-WEIGHT-1M"] == "22"
    used = 0
    for limit, weight in ((50, 1), (100, 2), (500, 5), (1000, 5), (1500, 10)):
        _, headers, _ = await fetch(
            f"{url}/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": limit}
        )
        used += weight
        assert headers["X-MBX-USED-WEIGHT-1M"] == str(used)
    assert server.stats()["binance"]["weight"] == 22 + used


async def test_exchange_info(sandbox_url: str) -> None:
    _, _, spot = await fetch(f"{sandbox_url}/api/v3/exchangeInfo")
    names = {s["symbol"] for s in spot["symbols"]}
    assert {"BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ENAUSDT"} <= names
    assert spot["rateLimits"][0]["limit"] == 6000
    _, _, one = await fetch(f"{sandbox_url}/api/v3/exchangeInfo", {"symbol": "ETHUSDT"})
    assert [s["baseAsset"] for s in one["symbols"]] == ["ETH"]
    _, _, two = await fetch(
        f"{sandbox_url}/api/v3/exchangeInfo", {"symbols": '["BTCUSDT","XRPUSDT"]'}
    )
    assert [s["symbol"] for s in two["symbols"]] == ["BTCUSDT", "XRPUSDT"]
    status, _, bad = await fetch(f"{sandbox_url}/api/v3/exchangeInfo", {"symbol": "NOPEUSDT"})
    assert status == 400 and bad["code"] == -1121
    _, _, fut = await fetch(f"{sandbox_url}/fapi/v1/exchangeInfo")
    perps = {s["symbol"]: s for s in fut["symbols"]}
    assert {"BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT"} <= set(perps)
    assert perps["ENAUSDT"]["onboardDate"] == ms("2024-04-02T08:00:00")
    kinds = {s["contractType"] for s in perps.values()}
    assert kinds == {"PERPETUAL", "PERPETUAL_DELIVERING"}  # one perpetual is being delisted
    assert fut["rateLimits"][0]["limit"] == 2400


async def test_funding_rate_history(sandbox_url: str) -> None:
    url = f"{sandbox_url}/fapi/v1/fundingRate"
    start, end = ms("2024-05-30"), ms("2024-06-02")
    _, _, rows = await fetch(url, {"symbol": "SOLUSDT", "startTime": start, "endTime": end})
    times = [r["fundingTime"] for r in rows]
    assert times[0] == start and times[-1] == end  # inclusive bounds
    assert times == sorted(times)
    steps = {(b - a) // HOUR_MS for a, b in itertools.pairwise(times)}
    assert steps == {8, 4}  # the documented 2024-06-01 switch
    sol = listing("binance", "SOLUSDT", "perp")
    f = market.funding(7, sol, start, end + 1)
    assert [float(r["fundingRate"]) for r in rows] == [round(x, 8) for x in f.rate.tolist()]
    assert all(float(r["markPrice"]) > 0 for r in rows)
    _, _, rows = await fetch(url, {"symbol": "BTCUSDT", "startTime": start})
    assert len(rows) == 100  # default limit
    _, _, rows = await fetch(
        url, {"symbol": "BTCUSDT", "startTime": ms("2020-01-01"), "limit": 5000}
    )
    assert len(rows) == 1000  # maximum
    _, _, rows = await fetch(url, {"symbol": "BTCUSDT", "limit": 3})
    assert len(rows) == 3 and rows[-1]["fundingTime"] <= time.time() * 1000
    _, _, old = await fetch(url, {"symbol": "BTCUSDT", "startTime": ms("2020-01-01"), "limit": 1})
    assert old[0]["markPrice"] == ""  # old rows carry no mark price
    status, _, body = await fetch(url, {"symbol": "NOPEUSDT"})
    assert status == 400 and body["code"] == -1121


async def test_open_interest(sandbox_url: str) -> None:
    _, _, snap = await fetch(f"{sandbox_url}/fapi/v1/openInterest", {"symbol": "BTCUSDT"})
    assert snap["symbol"] == "BTCUSDT" and float(snap["openInterest"]) > 0
    assert abs(snap["time"] - time.time() * 1000) < 60_000
    url = f"{sandbox_url}/futures/data/openInterestHist"
    _, _, rows = await fetch(url, {"symbol": "BTCUSDT", "period": "1h"})
    assert len(rows) == 30  # default limit
    stamps = [r["timestamp"] for r in rows]
    assert stamps == sorted(stamps) and all(t % HOUR_MS == 0 for t in stamps)
    _, _, rows = await fetch(url, {"symbol": "BTCUSDT", "period": "5m", "limit": 5000})
    assert len(rows) == 500
    now = int(time.time() * 1000)
    _, _, edge = await fetch(
        url, {"symbol": "ETHUSDT", "period": "1h", "startTime": now - 30 * DAY_MS + HOUR_MS}
    )
    assert edge[0]["timestamp"] >= now - 30 * DAY_MS
    status, _, old = await fetch(
        url, {"symbol": "ETHUSDT", "period": "1h", "startTime": now - 40 * DAY_MS, "limit": 500}
    )
    assert (status, old) == (400, {"code": -1130, "msg": "parameter 'startTime' is invalid."})
    status, _, body = await fetch(url, {"symbol": "BTCUSDT", "period": "1m"})
    assert status == 400 and body["code"] == -1130
    status, _, body = await fetch(url, {"symbol": "BTCUSDT"})
    assert status == 400 and body["code"] == -1102


async def test_time_and_ping(sandbox_url: str) -> None:
    for path in ("/api/v3/time", "/fapi/v1/time"):
        _, _, body = await fetch(f"{sandbox_url}{path}")
        assert abs(body["serverTime"] - time.time() * 1000) < 60_000
    status, _, body = await fetch(f"{sandbox_url}/api/v3/ping")
    assert status == 200 and body == {}


def test_weekly_bars_open_on_monday() -> None:
    week = Bar(7 * DAY_MS, 4 * DAY_MS)
    assert week.floor(ms("2024-01-03")) == ms("2024-01-01")


async def test_time_zone_shifts_daily_boundaries(sandbox_url: str) -> None:
    params = {"symbol": "BNBUSDT", "interval": "1d", "startTime": START, "limit": 2}
    _, _, utc = await fetch(f"{sandbox_url}/api/v3/klines", params)
    _, _, shifted = await fetch(f"{sandbox_url}/api/v3/klines", {**params, "timeZone": "+08:00"})
    assert [r[0] for r in utc] == [START, START + DAY_MS]
    assert [r[0] for r in shifted] == [START + 16 * HOUR_MS, START + 40 * HOUR_MS]
    status, _, body = await fetch(f"{sandbox_url}/api/v3/klines", {**params, "timeZone": "+15"})
    assert status == 400 and body["code"] == -1130


async def test_weekly_and_monthly_klines(sandbox_url: str) -> None:
    url = f"{sandbox_url}/api/v3/klines"
    _, _, weeks = await fetch(url, {"symbol": "BTCUSDT", "interval": "1w", "startTime": START})
    assert weeks[0][0] == ms("2024-01-01") and weeks[1][0] == ms("2024-01-08")
    assert weeks[0][6] == ms("2024-01-08") - 1
    _, _, months = await fetch(
        url, {"symbol": "BTCUSDT", "interval": "1M", "startTime": START, "limit": 3}
    )
    assert [r[0] for r in months] == [ms("2024-01-01"), ms("2024-02-01"), ms("2024-03-01")]
    assert months[1][6] == ms("2024-03-01") - 1
