"""OKX and Coinbase Exchange endpoints of the sandbox."""

from __future__ import annotations

import time

import pytest

from sandbox import market
from sandbox.common import trimmed
from sandbox.listing import DAY_MS, HOUR_MS
from sandbox.market import MINUTE_MS, Bar

from .helpers import expected_minutes, fetch, listing, ms

START = ms("2024-03-10")


# --------------------------------------------------------------------------- OKX


async def test_okx_history_candles_descending_with_exclusive_cursors(sandbox_url: str) -> None:
    url = f"{sandbox_url}/api/v5/market/history-candles"
    after = START + 100 * MINUTE_MS
    status, _, body = await fetch(url, {"instId": "BTC-USDT", "bar": "1m", "after": after})
    assert status == 200 and body["code"] == "0" and body["msg"] == ""
    rows = body["data"]
    assert len(rows) == 100  # default limit
    stamps = [int(r[0]) for r in rows]
    assert stamps == [after - (i + 1) * MINUTE_MS for i in range(100)]  # ts < after, newest first
    want = expected_minutes("okx", "BTCUSDT", START, after)
    assert [r[4] for r in rows[::-1]] == trimmed(want.close, 2)
    assert all(isinstance(v, str) for r in rows for v in r) and all(r[8] == "1" for r in rows)
    _, _, body = await fetch(
        url, {"instId": "BTC-USDT", "bar": "1m", "after": after, "before": after - 6 * MINUTE_MS}
    )
    assert [int(r[0]) for r in body["data"]] == stamps[:5]  # before is exclusive too
    _, _, body = await fetch(url, {"instId": "BTC-USDT", "after": after, "limit": 1000})
    assert len(body["data"]) == 300


async def test_okx_bars_utc_and_hong_kong_days(sandbox_url: str) -> None:
    url = f"{sandbox_url}/api/v5/market/history-candles"
    day = ms("2024-03-10")
    _, _, utc = await fetch(
        url, {"instId": "ETH-USDT", "bar": "1Dutc", "after": day + 1, "limit": 1}
    )
    assert int(utc["data"][0][0]) == day
    _, _, hk = await fetch(url, {"instId": "ETH-USDT", "bar": "1D", "after": day + 1, "limit": 1})
    assert int(hk["data"][0][0]) == day - 8 * HOUR_MS  # 00:00 UTC+8
    _, _, h4 = await fetch(url, {"instId": "ETH-USDT", "bar": "4H", "after": day, "limit": 6})
    daily = market.candles(7, listing("okx", "ETHUSDT"), Bar(DAY_MS), day - DAY_MS, day, day)
    assert [int(r[0]) for r in h4["data"]][-1] == day - DAY_MS
    assert float(max(h4["data"], key=lambda r: float(r[2]))[2]) == daily.high[0] / 100


async def test_okx_recent_candles_depth_and_confirm(sandbox_url: str) -> None:
    url = f"{sandbox_url}/api/v5/market/candles"
    _, _, body = await fetch(url, {"instId": "SOL-USDT-SWAP", "bar": "1m", "limit": 2})
    newest = body["data"][0]
    assert newest[8] == "0" and body["data"][1][8] == "1"
    assert int(newest[0]) <= time.time() * 1000 < int(newest[0]) + MINUTE_MS + 1000
    old = int(time.time() * 1000) - 2000 * MINUTE_MS
    _, _, body = await fetch(url, {"instId": "SOL-USDT-SWAP", "bar": "1m", "after": old})
    assert body["data"] == []  # beyond the latest 1,440 candles
    _, _, body = await fetch(
        f"{sandbox_url}/api/v5/market/history-candles",
        {"instId": "SOL-USDT-SWAP", "bar": "1m", "after": old, "limit": 1},
    )
    assert len(body["data"]) == 1


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/api/v5/market/history-candles", {"instId": "NOPE-USDT"}, 200, "51001"),
        ("/api/v5/market/history-candles", {}, 400, "50014"),
        ("/api/v5/market/history-candles", {"instId": "BTC-USDT", "bar": "7m"}, 400, "51000"),
        ("/api/v5/market/candles", {"instId": "BTC-USDT", "limit": "x"}, 400, "51000"),
        ("/api/v5/public/funding-rate-history", {"instId": "BTC-USDT"}, 200, "51001"),
        ("/api/v5/public/funding-rate-history", {}, 400, "50014"),
        ("/api/v5/public/instruments", {}, 400, "50014"),
        ("/api/v5/public/instruments", {"instType": "BOND"}, 400, "51000"),
        ("/api/v5/public/open-interest", {"instType": "SPOT"}, 400, "51000"),
        ("/api/v5/rubik/stat/contracts/open-interest-history", {}, 400, "50014"),
    ],
)
async def test_okx_errors(
    sandbox_url: str, path: str, params: dict[str, str], status: int, code: str
) -> None:
    got_status, _, body = await fetch(f"{sandbox_url}{path}", params)
    assert (got_status, body["code"], body["data"]) == (status, code, [])
    assert body["msg"]


async def test_okx_error_messages(sandbox_url: str) -> None:
    url = f"{sandbox_url}/api/v5/market/history-candles"
    _, _, body = await fetch(url, {"instId": "NOPE-USDT"})
    assert body == {"code": "51001", "data": [], "msg": "Instrument ID does not exist"}
    _, _, body = await fetch(url, {})
    assert body["msg"] == "Parameter instId can not be empty"
    _, _, body = await fetch(url, {"instId": "BTC-USDT", "bar": "1h"})  # case-sensitive
    assert body["msg"] == "Parameter bar error"


async def test_okx_funding_history(sandbox_url: str) -> None:
    url = f"{sandbox_url}/api/v5/public/funding-rate-history"
    _, _, body = await fetch(url, {"instId": "BTC-USDT-SWAP"})
    rows = body["data"]
    assert len(rows) == 92 * 3 - 1 or len(rows) == 92 * 3  # ~3 months of 8h events
    stamps = [int(r["fundingTime"]) for r in rows]
    assert stamps == sorted(stamps, reverse=True)
    assert stamps[-1] >= time.time() * 1000 - 93 * DAY_MS
    assert all(set(r) >= {"fundingRate", "realizedRate", "instType", "method"} for r in rows)
    _, _, page = await fetch(url, {"instId": "BTC-USDT-SWAP", "after": stamps[9], "limit": 3})
    assert [int(r["fundingTime"]) for r in page["data"]] == stamps[10:13]
    _, _, many = await fetch(url, {"instId": "ENA-USDT-SWAP", "limit": 1000})
    assert len(many["data"]) == 400  # maximum; ENA funds every 4 h


async def test_okx_open_interest(sandbox_url: str) -> None:
    _, _, body = await fetch(
        f"{sandbox_url}/api/v5/public/open-interest",
        {"instType": "SWAP", "instId": "BTC-USDT-SWAP"},
    )
    row = body["data"][0]
    assert row["instId"] == "BTC-USDT-SWAP"
    assert float(row["oiCcy"]) == pytest.approx(int(row["oi"]) * 0.01)
    _, _, body = await fetch(f"{sandbox_url}/api/v5/public/open-interest", {"instType": "SWAP"})
    assert {"BTC-USDT-SWAP", "ETH-USDT-SWAP", "SOL-USDT-SWAP"} <= {
        r["instId"] for r in body["data"]
    }
    url = f"{sandbox_url}/api/v5/rubik/stat/contracts/open-interest-history"
    _, _, body = await fetch(url, {"instId": "ETH-USDT-SWAP", "period": "1H"})
    stamps = [int(r[0]) for r in body["data"]]
    assert len(stamps) == 100 and stamps == sorted(stamps, reverse=True)
    assert all(t % HOUR_MS == 0 and len(r) == 4 for t, r in zip(stamps, body["data"], strict=True))
    _, _, page = await fetch(url, {"instId": "ETH-USDT-SWAP", "period": "1H", "end": stamps[0],
                                   "begin": stamps[5]})  # fmt: skip
    assert [int(r[0]) for r in page["data"]] == stamps[1:5]
    _, _, deep = await fetch(url, {"instId": "ETH-USDT-SWAP", "period": "1H", "end": stamps[-1]
                                   - 1500 * HOUR_MS})  # fmt: skip
    assert deep["data"] == []  # only the latest 1,440 entries


async def test_okx_instruments(sandbox_url: str) -> None:
    _, _, spot = await fetch(f"{sandbox_url}/api/v5/public/instruments", {"instType": "SPOT"})
    ids = {r["instId"]: r for r in spot["data"]}
    assert {"BTC-USDT", "ETH-USDT", "SOL-USDT", "BNB-USDT", "XRP-USDT"} <= set(ids)
    assert ids["BTC-USDT"]["baseCcy"] == "BTC" and ids["BTC-USDT"]["quoteCcy"] == "USDT"
    _, _, swap = await fetch(f"{sandbox_url}/api/v5/public/instruments", {"instType": "SWAP"})
    swaps = {r["instId"]: r for r in swap["data"]}
    assert (
        swaps["BTC-USDT-SWAP"]["settleCcy"] == "USDT" and swaps["BTC-USDT-SWAP"]["ctVal"] == "0.01"
    )
    assert swaps["ENA-USDT-SWAP"]["listTime"] == str(ms("2024-04-02T08:00:00"))


# --------------------------------------------------------------------------- Coinbase


async def test_coinbase_products(sandbox_url: str) -> None:
    _, _, products = await fetch(f"{sandbox_url}/products")
    ids = {p["id"] for p in products}
    assert {"BTC-USD", "BTC-USDT", "ETH-USD", "SOL-USDT", "XRP-USD"} <= ids
    assert not any(p.startswith("BNB-") for p in ids)
    status, _, body = await fetch(f"{sandbox_url}/products/BNB-USDT/candles")
    assert (status, body) == (404, {"message": "NotFound"})
    status, _, one = await fetch(f"{sandbox_url}/products/ETH-USD")
    assert status == 200 and one["base_currency"] == "ETH"


async def test_coinbase_candles(sandbox_url: str) -> None:
    url = f"{sandbox_url}/products/BTC-USD/candles"
    start = START + 30_000  # unaligned: the bucket containing start is included
    end = START + 299 * MINUTE_MS
    _, _, rows = await fetch(
        url, {"granularity": 60, "start": "2024-03-10T00:00:30Z", "end": "2024-03-10T04:59:00Z"}
    )
    stamps = [r[0] for r in rows]
    assert stamps == sorted(stamps, reverse=True) and stamps[0] == end // 1000
    assert stamps[-1] == START // 1000 and len(rows) == 300 and start > START
    want = expected_minutes("coinbase", "BTCUSD", START, end + MINUTE_MS)
    assert [r[4] for r in rows[::-1]] == (want.close / 100).round(2).tolist()
    assert all(r[1] <= min(r[3], r[4]) and r[2] >= max(r[3], r[4]) for r in rows)
    _, _, rows = await fetch(
        f"{sandbox_url}/products/BTC-USD/candles",
        {"granularity": 86400, "start": "2024-03-01", "end": "2024-03-03"},
    )
    assert [r[0] for r in rows] == [
        ms(d) // 1000 for d in ("2024-03-03", "2024-03-02", "2024-03-01")
    ]


async def test_coinbase_omits_intervals_without_trades(sandbox_url: str) -> None:
    _, _, rows = await fetch(
        f"{sandbox_url}/products/BTC-USDT/candles",
        {"granularity": 60, "start": "2024-03-10T00:00:00Z", "end": "2024-03-10T05:00:00Z"},
    )
    want = expected_minutes("coinbase", "BTCUSDT", START, START + 301 * MINUTE_MS)
    assert len(want) < 301  # some minutes had no trades
    assert [r[0] * 1000 for r in rows[::-1]] == want.ts.tolist()[:300]


async def test_coinbase_latest_without_window(sandbox_url: str) -> None:
    _, _, rows = await fetch(f"{sandbox_url}/products/ETH-USD/candles", {"granularity": 3600})
    assert len(rows) == 300
    assert rows[0][0] * 1000 <= time.time() * 1000 < rows[0][0] * 1000 + HOUR_MS + 1000


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"granularity": 120}, "Unsupported granularity"),
        ({"granularity": 14400}, "Unsupported granularity"),
        (
            {"granularity": 60, "start": "2024-03-10T00:00:00Z", "end": "2024-03-10T05:01:00Z"},
            "granularity too small for the requested time range. Count of aggregations "
            "requested exceeds 300",
        ),
    ],
)
async def test_coinbase_errors(sandbox_url: str, params: dict[str, object], message: str) -> None:
    status, _, body = await fetch(f"{sandbox_url}/products/BTC-USD/candles", params)
    assert (status, body) == (400, {"message": message})


async def test_coinbase_products_hold_collision_books(sandbox_url: str) -> None:
    """The list holds books sharing a pair's base and quote (as the real BTCAUCTION-USD does),
    each with its flags; their own product and candle endpoints answer, with no candles."""
    _, _, products = await fetch(f"{sandbox_url}/products")
    by_id = {p["id"]: p for p in products}
    auction = by_id["BTCAUCTION-USD"]
    assert (auction["base_currency"], auction["quote_currency"]) == ("BTC", "USD")
    assert auction["cancel_only"] and auction["status"] == "online"
    assert (
        by_id["ETHAUCTION-USD"]["auction_mode"] and by_id["XRPAUCTION-USD"]["status"] == "delisted"
    )
    assert not by_id["BTC-USD"]["cancel_only"]
    status, _, one = await fetch(f"{sandbox_url}/products/BTCAUCTION-USD")
    assert status == 200 and one == auction
    status, _, rows = await fetch(
        f"{sandbox_url}/products/BTCAUCTION-USD/candles", {"granularity": 3600}
    )
    assert (status, rows) == (200, [])
