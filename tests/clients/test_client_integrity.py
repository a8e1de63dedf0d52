"""Answers that hold a bad row: conflicting duplicates and non-finite values, from the exchange
answer through the client to silver, against a local server answering like each exchange."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from itertools import permutations
from typing import Any

import orjson
import pytest
from aiohttp import web

from clients.base import RetryPolicy
from clients.factory import make_client
from clients.protocol import UnknownSymbol
from models.enums import Dataset, Exchange, Interval, MarketKind
from tasks.transform import build_silver
from tasks.transform.validate import CONFLICTING_DUPLICATE
from tests.transform.builders import bronze

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02, timeout=5.0)
DAY = date(2024, 3, 5)
HOUR = 3_600_000
Answer = Callable[[web.Request], bytes | object]


class Answering:
    """A 127.0.0.1 server answering each path with `routes[path](request)` (bytes as sent,
    anything else as JSON); counts the requests per path."""

    def __init__(self, routes: dict[str, Answer]) -> None:
        self.routes = routes
        self.hits: Counter[str] = Counter()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.hits[request.path] += 1
        answer = self.routes[request.path](request)
        if isinstance(answer, bytes):
            return web.Response(body=answer, content_type="application/json")
        return web.json_response(answer)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[dict[str, Answer]], Any]]:
    runners: list[web.AppRunner] = []

    async def start(routes: dict[str, Answer]) -> Answering:
        server = Answering(routes)
        app = web.Application()
        app.router.add_get("/{tail:.*}", server.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return server

    yield start
    for runner in runners:
        await runner.cleanup()


def start_of(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def hours(day: date, step_h: int = 1) -> list[int]:
    first = int(start_of(day).timestamp() * 1000)
    return [first + h * HOUR for h in range(0, 24, step_h)]


def with_copies(rows: list[Any], conflict: Any, repeat: int) -> list[Any]:
    """`rows` (ascending) with `conflict` placed before the row it copies (index 5) and an
    exact repeat of row `repeat` after it."""
    out = [*rows[:5], conflict, *rows[5:]]
    at = out.index(rows[repeat])
    return [*out[: at + 1], rows[repeat], *out[at + 1 :]]


# -- what each exchange sends ---------------------------------------------------------------

BINANCE_SPOT = {
    "symbols": [
        {"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT"}
    ]
}
BINANCE_PERP = {"symbols": [{**BINANCE_SPOT["symbols"][0], "contractType": "PERPETUAL"}]}
OKX_SPOT = {
    "code": "0",
    "msg": "",
    "data": [{"instId": "BTC-USDT", "baseCcy": "BTC", "quoteCcy": "USDT", "state": "live"}],
}
OKX_SWAP = {
    "code": "0",
    "msg": "",
    "data": [
        {
            "instId": "BTC-USDT-SWAP",
            "ctType": "linear",
            "settleCcy": "USDT",
            "ctValCcy": "BTC",
            "uly": "BTC-USDT",
            "state": "live",
        }
    ],
}
COINBASE_PRODUCTS = [
    {
        "id": "BTC-USD",
        "base_currency": "BTC",
        "quote_currency": "USD",
        "status": "online",
        "trading_disabled": False,
        "cancel_only": False,
        "auction_mode": False,
    }
]


def okx(rows: list[Any]) -> dict[str, Any]:
    return {"code": "0", "msg": "", "data": rows[::-1]}  # newest first


def kline(ms: int, close: str) -> list[Any]:
    return [ms, "100", "110", "90", close, "5", ms + HOUR - 1, "500", 7, "2", "200", "0"]


def okx_candle(ms: int, close: str) -> list[str]:
    return [str(ms), "100", "110", "90", close, "5", "500", "500", "1"]


def coinbase_candle(ms: int, close: float) -> list[Any]:
    return [ms // 1000, 90.0, 110.0, 100.0, close, 5.0]


def duplicated_candles(exchange: Exchange) -> tuple[str, dict[str, Answer]]:
    """Routes of one exchange whose candles of DAY (1h) hold a differing copy of 05:00 placed
    before the real one, and an exact repeat of 07:00."""
    t = hours(DAY)
    if exchange is Exchange.BINANCE:
        rows = [kline(ms, "101") for ms in t]
        page = with_copies(rows, kline(t[5], "109"), 7)
        return "/api/v3/klines", {
            "/api/v3/exchangeInfo": lambda r: BINANCE_SPOT,
            "/api/v3/klines": lambda r: page,
        }
    if exchange is Exchange.OKX:
        okx_rows = [okx_candle(ms, "101") for ms in t]
        okx_page = with_copies(okx_rows, okx_candle(t[5], "109"), 7)
        return "/api/v5/market/history-candles", {
            "/api/v5/public/instruments": lambda r: OKX_SPOT,
            "/api/v5/market/history-candles": lambda r: okx(okx_page),
        }
    cb_rows = [coinbase_candle(ms, 101.0) for ms in t]
    cb_page = with_copies(cb_rows, coinbase_candle(t[5], 109.0), 7)[::-1]
    return "/products/BTC-USD/candles", {
        "/products": lambda r: COINBASE_PRODUCTS,
        "/products/BTC-USD/candles": lambda r: cb_page,
    }


def symbol_of(exchange: Exchange) -> str:
    return "BTCUSD" if exchange is Exchange.COINBASE else "BTCUSDT"


def silver(dataset: str, frame: Any, exchange: Exchange, day: date, interval: Interval | None):  # type: ignore[no-untyped-def]
    return build_silver(
        dataset,
        frame,
        exchange=exchange.value,
        interval=interval,
        day=day,
        symbols=[symbol_of(exchange)],
        closed=True,
        complete=True,
    )


@pytest.mark.parametrize("exchange", list(Exchange))
async def test_conflicting_duplicate_candle_is_quarantined_both_copies(serve, exchange) -> None:
    """Injected: a candle of 05:00 with another close, placed before the real one in the page,
    and an exact repeat of 07:00. Held: both 05:00 copies reach bronze and are quarantined as
    conflicting duplicates (none is chosen); 07:00 is one good row; the 22 others are good."""
    _path, routes = duplicated_candles(exchange)
    server = await serve(routes)
    start = start_of(DAY)
    async with make_client(exchange, sandbox_url=server.url, retry=FAST) as client:
        frame = await client.ohlcv(symbol_of(exchange), Interval.H1, start, start + timedelta(1))
    assert frame.height == 25  # 24 candles and the differing copy; the exact repeat once
    batch = silver("ohlcv", frame, exchange, DAY, Interval.H1)
    assert batch.data.height == 23
    assert batch.data["close"].to_list() == [101.0] * 23
    five = start + timedelta(hours=5)
    assert five not in batch.data["ts"].to_list()
    assert batch.quarantine["ts"].to_list() == [five, five]
    assert sorted(batch.quarantine["close"].to_list()) == [101.0, 109.0]
    assert set(batch.quarantine["reason"]) == {CONFLICTING_DUPLICATE}


def recent_day() -> date:
    return (datetime.now(UTC) - timedelta(days=3)).date()


def funding_and_oi(exchange: Exchange, dataset: str, day: date) -> dict[str, Answer]:
    """Routes whose funding (8h) or open-interest (1h) rows of `day` hold a differing copy of
    the second (funding) or sixth (open interest) row before the real one, and an exact repeat."""
    if dataset == "funding":
        t = hours(day, 8)
        if exchange is Exchange.BINANCE:
            rows = [
                {
                    "symbol": "BTCUSDT",
                    "fundingTime": ms,
                    "fundingRate": "0.0001",
                    "markPrice": "100",
                }
                for ms in t
            ]
            page = [*rows[:1], {**rows[1], "fundingRate": "0.0009"}, *rows, *rows[2:]]
            return {
                "/fapi/v1/exchangeInfo": lambda r: BINANCE_PERP,
                "/fapi/v1/fundingRate": lambda r: page,
            }
        objs = [
            {
                "instId": "BTC-USDT-SWAP",
                "instType": "SWAP",
                "fundingTime": str(ms),
                "fundingRate": "0.0001",
                "realizedRate": "0.0001",
                "method": "next_period",
                "formulaType": "noRate",
            }
            for ms in t
        ]
        okx_page = [*objs[:1], {**objs[1], "realizedRate": "0.0009"}, *objs, *objs[2:]]
        return {
            "/api/v5/public/instruments": lambda r: OKX_SWAP,
            "/api/v5/public/funding-rate-history": lambda r: okx(okx_page),
        }
    t = hours(day)
    if exchange is Exchange.BINANCE:
        oi = [
            {
                "symbol": "BTCUSDT",
                "sumOpenInterest": "10",
                "sumOpenInterestValue": "1000",
                "timestamp": ms,
            }
            for ms in t
        ]
        oi_page = with_copies(oi, {**oi[5], "sumOpenInterest": "19"}, 7)
        return {
            "/fapi/v1/exchangeInfo": lambda r: BINANCE_PERP,
            "/futures/data/openInterestHist": lambda r: oi_page,
        }
    arrays = [[str(ms), "1000", "10", "1000"] for ms in t]
    okx_oi = with_copies(arrays, [str(t[5]), "1900", "19", "1900"], 7)
    return {
        "/api/v5/public/instruments": lambda r: OKX_SWAP,
        "/api/v5/rubik/stat/contracts/open-interest-history": lambda r: okx(okx_oi),
    }


@pytest.mark.parametrize("exchange", [Exchange.BINANCE, Exchange.OKX])
@pytest.mark.parametrize("dataset", ["funding", "open_interest"])
async def test_conflicting_duplicate_funding_and_oi_are_quarantined(serve, exchange, dataset):
    """Injected: a differing copy of one funding event (open-interest point) placed before the
    real one, and exact repeats. Held: both differing copies are quarantined as conflicting
    duplicates and every other row is good once."""
    day = recent_day()
    server = await serve(funding_and_oi(exchange, dataset, day))
    start = start_of(day)
    async with make_client(exchange, sandbox_url=server.url, retry=FAST) as client:
        fetch = client.funding if dataset == "funding" else client.open_interest
        frame = await fetch("BTCUSDT", start, start + timedelta(1))
    batch = silver(dataset, frame, exchange, day, None)
    expected = 3 if dataset == "funding" else 24
    assert batch.data.height == expected - 1
    assert batch.quarantine.height == 2
    assert batch.quarantine["ts"].n_unique() == 1
    assert set(batch.quarantine["reason"]) == {CONFLICTING_DUPLICATE}


async def test_coinbase_page_with_non_finite_values_quarantines_those_rows(serve) -> None:
    """Injected: one Coinbase candles page of DAY (1h) whose 03:00 close is `NaN`, 04:00 high
    `Infinity`, 09:00 volume `1e999` (JSON number tokens orjson refuses) and 11:00 low the
    string "n/a". Held: the page is read once (no retry), the four rows are quarantined as not
    finite, and the 20 good candles of the day are kept, as on Binance and OKX."""
    bad = {3: {4: "NaN"}, 4: {2: "Infinity"}, 9: {5: "1e999"}, 11: {1: '"n/a"'}}
    rows = [coinbase_candle(ms, 101.0) for ms in hours(DAY)]
    text = [[orjson.dumps(v).decode() for v in row] for row in rows]
    for hour, fields in bad.items():
        for field, value in fields.items():
            text[hour][field] = value
    page = ("[" + ",".join("[" + ",".join(row) + "]" for row in text[::-1]) + "]").encode()
    server = await serve(
        {"/products": lambda r: COINBASE_PRODUCTS, "/products/BTC-USD/candles": lambda r: page}
    )
    start = start_of(DAY)
    async with make_client(Exchange.COINBASE, sandbox_url=server.url, retry=FAST) as client:
        frame = await client.ohlcv("BTCUSD", Interval.H1, start, start + timedelta(1))
    assert server.hits["/products/BTC-USD/candles"] == 1
    assert frame.height == 24
    batch = silver("ohlcv", frame, Exchange.COINBASE, DAY, Interval.H1)
    assert batch.data.height == 20
    bad = sorted(batch.quarantine["ts"].to_list())
    assert bad == [start + timedelta(hours=h) for h in (3, 4, 9, 11)]
    reasons = batch.quarantine.sort("ts")["reason"].to_list()
    assert ["close not finite" in reasons[0], "high not finite" in reasons[1]] == [True, True]
    assert "volume not finite" in reasons[2] and "low not finite" in reasons[3]


async def test_coinbase_page_that_is_not_json_is_still_retried(serve) -> None:
    """Injected: a candles body cut in half. Held: it is retried and, still cut, reported as
    the exchange failing (a truncated page is not a bad row)."""
    server = await serve(
        {"/products": lambda r: COINBASE_PRODUCTS, "/products/BTC-USD/candles": lambda r: b"[[1,"}
    )
    start = start_of(DAY)
    async with make_client(Exchange.COINBASE, sandbox_url=server.url, retry=FAST) as client:
        with pytest.raises(Exception, match="undecodable"):
            await client.ohlcv("BTCUSD", Interval.H1, start, start + timedelta(1))
    assert server.hits["/products/BTC-USD/candles"] == FAST.attempts


# -- Coinbase products that share a base and quote -----------------------------------------


def coinbase_product(product_id: str, **fields: Any) -> dict[str, Any]:
    """A `/products` entry with base BTC and quote USD, as the real list holds them."""
    body = {
        "id": product_id,
        "base_currency": "BTC",
        "quote_currency": "USD",
        "display_name": product_id.replace("-", "/"),
        "status": "online",
        "status_message": "",
        "trading_disabled": False,
        "cancel_only": False,
        "auction_mode": False,
    }
    return {**body, **fields}


BOOK = coinbase_product("BTC-USD")
AUCTION = coinbase_product("BTCAUCTION-USD", cancel_only=True)  # the recorded real product
STALE = coinbase_product("BTC-USD", status="delisted", trading_disabled=True)  # a repeated id


@pytest.mark.parametrize("order", list(permutations([BOOK, AUCTION, STALE])))
async def test_coinbase_btcusd_is_the_btc_usd_book_whatever_the_list_order(serve, order):
    """Injected: `/products` holding BTC-USD, the cancel-only BTCAUCTION-USD (base BTC, quote
    USD) and a delisted repeat of BTC-USD, in every order. Held: BTCUSD resolves to the
    tradable BTC-USD; the auction book is its own listing BTCAUCTIONUSD; silver instruments
    keeps both listings and quarantines none."""
    server = await serve({"/products": lambda r: list(order)})
    async with make_client(Exchange.COINBASE, sandbox_url=server.url, retry=FAST) as client:
        found = await client.resolve("BTCUSD", MarketKind.SPOT)
        frame = await client.instruments(MarketKind.SPOT)
    assert (found.native_symbol, found.status) == ("BTC-USD", "online")
    assert sorted(frame["symbol"]) == ["BTCAUCTIONUSD", "BTCUSD"]
    batch = build_silver(
        "instruments",
        frame,
        exchange="coinbase",
        interval=None,
        day=DAY,
        symbols=[],
        closed=True,
        complete=True,
    )
    assert batch.quarantine.is_empty()
    rows = batch.data.select("symbol", "native_symbol", "base", "quote", "status").rows()
    assert rows == [
        ("BTCAUCTIONUSD", "BTCAUCTION-USD", "BTCAUCTION", "USD", "online"),
        ("BTCUSD", "BTC-USD", "BTC", "USD", "online"),
    ]


async def test_coinbase_auction_book_never_stands_in_for_the_pair(serve) -> None:
    """Injected: `/products` holding only BTCAUCTION-USD. Held: BTCUSD is not listed (no
    candles are taken from the auction book under the pair's name)."""
    server = await serve({"/products": lambda r: [AUCTION]})
    async with make_client(Exchange.COINBASE, sandbox_url=server.url, retry=FAST) as client:
        with pytest.raises(UnknownSymbol):
            await client.resolve("BTCUSD", MarketKind.SPOT)


def test_silver_names_stored_coinbase_snapshots_by_product_id() -> None:
    """Injected: a stored bronze snapshot in which BTCAUCTION-USD was listed as BTCUSD (its
    currency fields), beside BTC-USD. Held: silver lists it as BTCAUCTIONUSD and keeps both
    listings; neither is quarantined as a duplicate key."""
    records = [
        {"symbol": "BTCUSD", "native_symbol": native, "base": "BTC", "quote": "USD",
         "kind": "spot", "status": "online", "raw": "{}"}
        for native in ("BTCAUCTION-USD", "BTC-USD")
    ]  # fmt: skip
    stored = bronze(Exchange.COINBASE, Dataset.INSTRUMENTS, records, symbol="BTCUSD")
    batch = build_silver(
        "instruments",
        stored,
        exchange="coinbase",
        interval=None,
        day=DAY,
        symbols=[],
        closed=True,
        complete=True,
    )
    assert batch.quarantine.is_empty()
    assert dict(batch.data.select("symbol", "native_symbol").rows()) == {
        "BTCUSD": "BTC-USD",
        "BTCAUCTIONUSD": "BTCAUCTION-USD",
    }


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6, 7, 8])
async def test_sandbox_coinbase_collisions_resolve_to_the_book(make_sandbox, seed) -> None:
    """Injected: the sandbox's `/products` (collision books BTCAUCTION-USD, ETHAUCTION-USD,
    XRPAUCTION-USD beside their pairs' books, in the seed's order). Held: BTCUSD, ETHUSD and
    XRPUSD resolve to BTC-USD, ETH-USD and XRP-USD, and BTCUSD candles come from BTC-USD."""
    server = make_sandbox(seed=seed)
    async with make_client(Exchange.COINBASE, sandbox_url=server.url, retry=FAST) as client:
        for base in ("BTC", "ETH", "XRP"):
            found = await client.resolve(f"{base}USD", MarketKind.SPOT)
            assert found.native_symbol == f"{base}-USD"
        start = start_of(DAY)
        candles = await client.ohlcv("BTCUSD", Interval.H1, start, start + timedelta(1))
    assert candles.height == 24 and set(candles["native_symbol"]) == {"BTC-USD"}
