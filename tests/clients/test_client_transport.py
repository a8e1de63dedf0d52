"""Retries, the exchange-wide 429 pause and session handling, against a scripted local server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from clients.base import Request, RetryPolicy
from clients.factory import make_client, open_clients
from clients.protocol import BadRequest, ExchangeUnavailable, RateLimited
from models.enums import Exchange

FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, timeout=5.0)
Script = Callable[[int, web.Request], web.Response]


class Scripted:
    """A 127.0.0.1 server answering the n-th request with `script(n)`; records arrivals."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.arrivals: list[float] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.arrivals.append(time.monotonic())
        return self.script(len(self.arrivals), request)


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[[Script], Any]]:
    runners: list[web.AppRunner] = []

    async def start(script: Script) -> Scripted:
        server = Scripted(script)
        app = web.Application()
        app.router.add_get("/{tail:.*}", server.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        server.url = f"http://127.0.0.1:{port}"
        return server

    yield start
    for runner in runners:
        await runner.cleanup()


PRODUCTS = Request("api", "/products", {}, symbol="BTCUSDT")


async def test_429_pauses_every_client_of_the_exchange(scripted) -> None:
    def script(n: int, request: web.Request) -> web.Response:
        if n == 1:
            return web.json_response(
                {"message": "Public rate limit exceeded"}, status=429, headers={"Retry-After": "1"}
            )
        return web.json_response([])

    server = await scripted(script)
    a = make_client(Exchange.COINBASE, sandbox_url=server.url, rate_limits=False, retry=FAST)
    b = make_client(Exchange.COINBASE, sandbox_url=server.url, rate_limits=False, retry=FAST)
    async with a, b:

        async def later() -> list[Any]:
            await asyncio.sleep(0.2)
            return await asyncio.gather(*(b.get(PRODUCTS) for _ in range(3)))

        first, rest = await asyncio.gather(a.get(PRODUCTS), later())
    assert first == [] and rest == [[], [], []]
    assert a.stats.rate_limited == 1 and a.stats.retries == 1
    assert all(t - server.arrivals[0] >= 0.95 for t in server.arrivals[1:])


async def test_transient_failures_are_retried_then_reported(scripted) -> None:
    def script(n: int, request: web.Request) -> web.Response:
        if n == 1:
            return web.Response(status=502, text="<html>Bad Gateway</html>")
        if n == 2:
            return web.Response(status=200, body=b"[[1,2,3", content_type="application/json")
        return web.json_response([])

    server = await scripted(script)
    async with make_client(Exchange.COINBASE, sandbox_url=server.url, retry=FAST) as c:
        assert await c.get(PRODUCTS) == []
        assert c.stats.retries == 2 and c.stats.requests == 3

    always = await scripted(lambda n, request: web.json_response({"message": "boom"}, status=503))
    async with make_client(Exchange.COINBASE, sandbox_url=always.url, retry=FAST) as c:
        with pytest.raises(ExchangeUnavailable) as info:
            await c.get(PRODUCTS)
    assert len(always.arrivals) == FAST.attempts
    assert "coinbase" in str(info.value) and "BTCUSDT" in str(info.value)
    assert "/products" in str(info.value) and "HTTP 503" in str(info.value)


async def test_rate_limited_after_retries_keeps_retry_after(scripted) -> None:
    body = {"code": -1003, "msg": "Too much request weight used"}
    server = await scripted(
        lambda n, request: web.json_response(body, status=429, headers={"Retry-After": "0"})
    )
    retry = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02, rate_limit_pause=0.01)
    async with make_client(Exchange.BINANCE, sandbox_url=server.url, retry=retry) as c:
        with pytest.raises(RateLimited) as info:
            await c.get(Request("api", "/api/v3/klines", {}, symbol="BTCUSDT"))
    assert info.value.code == -1003 and info.value.retry_after == 0


async def test_client_errors_are_never_retried(scripted) -> None:
    server = await scripted(
        lambda n, request: web.json_response(
            {"code": -1120, "msg": "Invalid interval."}, status=400
        )
    )
    async with make_client(Exchange.BINANCE, sandbox_url=server.url, retry=FAST) as c:
        with pytest.raises(BadRequest):
            await c.get(Request("api", "/api/v3/klines", {}))
    assert len(server.arrivals) == 1


async def test_shared_session_is_not_closed_by_clients(scripted) -> None:
    server = await scripted(lambda n, request: web.json_response([]))
    async with aiohttp.ClientSession() as session:
        c = make_client(Exchange.COINBASE, sandbox_url=server.url, session=session)
        await c.get(PRODUCTS)
        await c.aclose()
        assert not session.closed
    async with open_clients([Exchange.OKX, Exchange.COINBASE], server.url) as clients:
        assert set(clients) == {Exchange.OKX, Exchange.COINBASE}
        assert clients[Exchange.OKX].base_urls == {"www": server.url}


async def test_pages_going_backwards_are_the_exchange_failing(scripted) -> None:
    info = {"symbols": [{"symbol": "BTCUSDT", "baseAsset": "BTC", "quoteAsset": "USDT"}]}
    funding = [{"fundingTime": 1_000, "fundingRate": "0.0001", "markPrice": "1"}]

    def script(n: int, request: web.Request) -> web.Response:
        if request.path == "/fapi/v1/exchangeInfo":
            return web.json_response(
                {"symbols": [{**info["symbols"][0], "contractType": "PERPETUAL"}]}
            )
        # Always the same old row, whatever startTime says: the cursor cannot progress.
        return web.json_response(funding * 1000)

    server = await scripted(script)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    async with make_client(Exchange.BINANCE, sandbox_url=server.url, retry=FAST) as c:
        with pytest.raises(ExchangeUnavailable, match="inconsistent pages") as error:
            await c.funding("BTCUSDT", start, start + timedelta(days=1))
    assert error.value.endpoint == "/fapi/v1/fundingRate" and error.value.symbol == "BTCUSDT"
