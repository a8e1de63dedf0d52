"""Rate limits, fault profiles, per-market overrides and the control endpoints."""

from __future__ import annotations

import argparse
import json
import urllib.request
from collections.abc import Callable
from typing import Any

import aiohttp

from sandbox import (
    SandboxConfig,
    SandboxProcess,
    SandboxServer,
    add_sandbox_arguments,
    config_from_args,
)
from sandbox.limits import BAN_AFTER, SlidingWindow, TokenBucket, WeightLimiter

from .helpers import FakeClock, fetch, ms

MakeSandbox = Callable[..., SandboxServer]


KLINES = {"symbol": "BTCUSDT", "interval": "1m", "limit": 5}


async def test_binance_429_then_418_ban(make_sandbox: MakeSandbox) -> None:
    clock = FakeClock()
    server = make_sandbox(rate_limits="real", rate_limit_scale=0.01, clock=clock)  # 60/min
    url = f"{server.url}/api/v3/klines"
    for i in range(30):
        status, headers, _ = await fetch(url, KLINES)
        assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == str(2 * (i + 1))
    status, headers, body = await fetch(url, KLINES)
    assert status == 429 and body["code"] == -1003
    assert body["msg"].startswith("Too much request weight used; current limit is 60")
    assert int(headers["Retry-After"]) == 50 and headers["X-MBX-USED-WEIGHT-1M"] == "60"
    in_flight = [(await fetch(url, KLINES))[0] for _ in range(BAN_AFTER + 2)]
    assert in_flight == [429] * (BAN_AFTER + 2)  # sent along with the first: excused
    clock.advance(1)
    statuses = [(await fetch(url, KLINES))[0] for _ in range(BAN_AFTER)]
    assert statuses == [429] * (BAN_AFTER - 1) + [418]
    status, headers, body = await fetch(url, KLINES)
    assert status == 418 and "IP banned until" in body["msg"]
    assert 0 < int(headers["Retry-After"]) <= 120
    clock.advance(60)  # a new minute does not lift the ban
    assert (await fetch(url, KLINES))[0] == 418
    clock.advance(60)
    assert (await fetch(url, KLINES))[0] == 200
    stats = server.stats()["binance"]
    assert stats["rate_limited"] == 1 + (BAN_AFTER + 2) + BAN_AFTER + 2
    # Futures have their own budget.
    status, _, _ = await fetch(f"{server.url}/fapi/v1/klines", KLINES)
    assert status == 200


async def test_binance_futures_weight_limit_and_funding_budget(make_sandbox: MakeSandbox) -> None:
    clock = FakeClock()
    server = make_sandbox(rate_limits="real", rate_limit_scale=0.01, clock=clock)  # 24/min
    url = f"{server.url}/fapi/v1/klines"
    assert (await fetch(url, {**KLINES, "limit": 1500}))[0] == 200  # weight 10
    assert (await fetch(url, {**KLINES, "limit": 1500}))[0] == 200  # 20
    status, _, body = await fetch(url, {**KLINES, "limit": 1500})
    assert status == 429 and "current limit is 24" in body["msg"]
    funding = f"{server.url}/fapi/v1/fundingRate"
    statuses = [(await fetch(funding, {"symbol": "BTCUSDT"}))[0] for _ in range(6)]
    assert statuses == [200] * 5 + [429]  # 500 per 5 minutes, scaled


async def test_okx_request_windows(make_sandbox: MakeSandbox) -> None:
    clock = FakeClock()
    server = make_sandbox(rate_limits="real", clock=clock)
    url = f"{server.url}/api/v5/market/history-candles"
    statuses = [(await fetch(url, {"instId": "BTC-USDT"}))[0] for _ in range(21)]
    assert statuses == [200] * 20 + [429]
    _, _headers, body = await fetch(url, {"instId": "ETH-USDT"})  # per IP: all instruments
    assert body == {"msg": "Too Many Requests", "code": "50011"}
    clock.advance(2.01)
    assert (await fetch(url, {"instId": "BTC-USDT"}))[0] == 200
    funding = f"{server.url}/api/v5/public/funding-rate-history"
    statuses = [(await fetch(funding, {"instId": "BTC-USDT-SWAP"}))[0] for _ in range(11)]
    assert statuses == [200] * 10 + [429]
    assert (await fetch(funding, {"instId": "ETH-USDT-SWAP"}))[0] == 200  # per IP + instId
    assert (await fetch(f"{server.url}/api/v5/market/candles", {"instId": "BTC-USDT"}))[0] == 200


async def test_coinbase_token_bucket(make_sandbox: MakeSandbox) -> None:
    clock = FakeClock()
    server = make_sandbox(rate_limits="real", clock=clock)
    url = f"{server.url}/products/BTC-USD/candles"
    statuses = [(await fetch(url, {"granularity": 3600}))[0] for _ in range(16)]
    assert statuses == [200] * 15 + [429]
    _, _, body = await fetch(url, {"granularity": 3600})
    assert body == {"message": "Public rate limit exceeded"}
    clock.advance(0.11)
    assert (await fetch(url, {"granularity": 3600}))[0] == 200
    assert server.stats()["coinbase"]["rate_limited"] == 2


def test_limiters_unit() -> None:
    limiter = WeightLimiter(10)
    assert limiter.check(6, 0.0).status == 0
    assert limiter.check(6, 1.0).status == 429
    assert limiter.check(6, 61.0).status == 0  # next fixed minute
    window = SlidingWindow(2, 2.0)
    assert [window.check("k", t).status for t in (0.0, 0.5, 1.0, 2.1)] == [0, 0, 429, 0]
    bucket = TokenBucket(10, 15)
    assert [bucket.check(0.0).status for _ in range(16)].count(429) == 1


async def test_rate_limits_off_still_report_weight(sandbox_url: str) -> None:
    status, headers, _ = await fetch(f"{sandbox_url}/api/v3/exchangeInfo")
    assert status == 200 and int(headers["X-MBX-USED-WEIGHT-1M"]) >= 20


# --------------------------------------------------------------------------- faults


async def _raw(session: aiohttp.ClientSession, url: str, params: dict[str, Any]) -> Any:
    """One attempt: the decoded body, or the failure it met."""
    try:
        async with session.get(url, params=params) as response:
            text = await response.text()
            if response.status != 200:
                return ("status", response.status)
            return json.loads(text)
    except (TimeoutError, aiohttp.ClientError, json.JSONDecodeError) as exc:
        return ("failure", type(exc).__name__)


async def _retrying(session: aiohttp.ClientSession, url: str, params: dict[str, Any]) -> Any:
    for _ in range(30):
        result = await _raw(session, url, params)
        if not isinstance(result, tuple):
            return result
    raise AssertionError(f"no clean answer for {url} {params}")


PAGES = [
    ("/api/v3/klines", {"symbol": "ETHUSDT", "interval": "1m", "startTime": str(ms("2024-05-01")
     + i * 60_000_000), "limit": "1000"}) for i in range(6)
] + [
    ("/api/v5/market/history-candles", {"instId": "SOL-USDT", "after": str(ms("2024-05-01")
     + i * 18_000_000), "limit": "300"}) for i in range(6)
] + [
    ("/products/BTC-USD/candles", {"granularity": "300", "start": f"2024-05-0{i + 1}T00:00:00Z",
     "end": f"2024-05-0{i + 1}T23:55:00Z"}) for i in range(6)
] + [
    ("/fapi/v1/fundingRate", {"symbol": "BTCUSDT", "startTime": str(ms("2024-01-01")),
     "limit": "1000"}),
]  # fmt: skip


async def test_faults_never_change_data(sandbox_url: str, make_sandbox: MakeSandbox) -> None:
    hostile = make_sandbox(faults="hostile", seed=7)
    async with aiohttp.ClientSession() as session:
        clean = [await _retrying(session, sandbox_url + path, p) for path, p in PAGES]
        for _ in range(2):
            noisy = [await _retrying(session, hostile.url + path, p) for path, p in PAGES]
            assert noisy == clean
    stats = hostile.stats()
    assert sum(entry["faults"] for entry in stats.values()) > 0


async def test_faults_are_deterministic(make_sandbox: MakeSandbox) -> None:
    runs = []
    for _ in range(2):
        server = make_sandbox(faults="flaky", seed=11)
        async with aiohttp.ClientSession() as session:
            outcomes = []
            for _ in range(60):
                result = await _raw(session, f"{server.url}/api/v3/klines", KLINES)
                outcomes.append(result if isinstance(result, tuple) else "ok")
        runs.append(outcomes)
        server.stop()
    assert runs[0] == runs[1]
    assert "ok" in runs[0] and any(isinstance(o, tuple) for o in runs[0])


async def test_flaky_429_bursts_carry_retry_after(make_sandbox: MakeSandbox) -> None:
    server = make_sandbox(faults="flaky", seed=2)
    seen = set()
    async with aiohttp.ClientSession() as session:
        for _ in range(40):
            async with session.get(f"{server.url}/api/v5/public/instruments",
                                   params={"instType": "SPOT"}) as response:  # fmt: skip
                if response.status == 429:
                    seen.add(response.headers.get("Retry-After"))
                    assert (await response.json())["code"] == "50011"
    assert seen == {"1"}


# --------------------------------------------------------------------------- overrides


async def test_persistent_failure_of_one_market(make_sandbox: MakeSandbox) -> None:
    server = make_sandbox(fail={("okx", "ETHUSDT")})
    url = f"{server.url}/api/v5/market/history-candles"
    for inst in ("ETH-USDT", "ETH-USDT-SWAP"):
        status, _, body = await fetch(url, {"instId": inst})
        assert status == 503 and body["code"] == "50001"
    assert (await fetch(url, {"instId": "BTC-USDT"}))[0] == 200
    assert (await fetch(f"{server.url}/api/v3/klines", {**KLINES, "symbol": "ETHUSDT"}))[0] == 200


async def test_empty_day_override(make_sandbox: MakeSandbox) -> None:
    server = make_sandbox(empty={("binance", "BTCUSDT", "2024-03-01")})
    url = f"{server.url}/api/v3/klines"
    day = ms("2024-03-01")
    params = {"symbol": "BTCUSDT", "interval": "1h", "startTime": day, "endTime": day + 86_399_999}
    _, _, rows = await fetch(url, params)
    assert rows == []
    _, _, rows = await fetch(url, {**params, "symbol": "ETHUSDT"})
    assert len(rows) == 24
    _, _, funding = await fetch(
        f"{server.url}/fapi/v1/fundingRate",
        {"symbol": "BTCUSDT", "startTime": day - 86_400_000, "endTime": day + 2 * 86_400_000},
    )
    assert [r["fundingTime"] for r in funding] == [
        day - 86_400_000 + h * 3_600_000 for h in (0, 8, 16)
    ] + [day + 86_400_000 + h * 3_600_000 for h in (0, 8, 16)] + [day + 2 * 86_400_000]


def test_config_validation() -> None:
    for bad in ({"faults": "evil"}, {"rate_limits": "sometimes"}, {"fail": {("kraken", "BTCUSDT")}},
                {"rate_limit_scale": 0}):  # fmt: skip
        try:
            SandboxConfig(**bad)  # type: ignore[arg-type]
        except ValueError as exc:
            assert str(exc)
        else:
            raise AssertionError(f"accepted {bad}")


# --------------------------------------------------------------------------- control


async def test_stats_and_reset(make_sandbox: MakeSandbox) -> None:
    server = make_sandbox()
    await fetch(f"{server.url}/api/v3/klines", KLINES)
    await fetch(f"{server.url}/api/v3/klines", {"symbol": "NOPE", "interval": "1m"})
    await fetch(f"{server.url}/api/v5/public/instruments", {"instType": "SWAP"})
    status, _, stats = await fetch(f"{server.url}/__sandbox__/stats")
    assert status == 200
    assert stats["binance"]["requests"] == 2 and stats["binance"]["errors"] == 1
    assert stats["binance"]["weight"] == 4
    assert stats["binance"]["by_path"] == {"/api/v3/klines": 2}
    assert stats["okx"]["by_path"] == {"/api/v5/public/instruments": 1}
    assert server.stats() == stats
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{server.url}/__sandbox__/reset") as response,
    ):
        assert response.status == 200
    assert server.stats()["binance"]["requests"] == 0
    await fetch(f"{server.url}/products")
    server.reset_stats()
    assert all(entry["requests"] == 0 for entry in server.stats().values())


def test_server_start_stop_and_context() -> None:
    server = SandboxServer(SandboxConfig(seed=1))
    server.start()
    url = server.url
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(f"{url}/api/v3/ping"):
        pass
    server.stop()
    server.start()  # a restart keeps the port and the counters
    assert server.url == url and server.stats()["binance"]["requests"] == 1
    server.stop()
    with SandboxServer() as again:
        assert again.url != ""


def test_cli_arguments_and_child_process() -> None:
    parser = argparse.ArgumentParser()
    add_sandbox_arguments(parser)
    ns = parser.parse_args(["--seed", "3", "--faults", "flaky", "--rate-limits", "real"])
    config = config_from_args(ns)
    assert (config.seed, config.faults, config.rate_limits) == (3, "flaky", "real")
    assert (ns.host, ns.port) == ("127.0.0.1", 8700)
    with SandboxProcess(SandboxConfig(seed=3)) as child:
        with urllib.request.urlopen(f"{child.url}/api/v3/ping") as answer:
            assert json.loads(answer.read()) == {}
        assert child.stats()["binance"]["requests"] == 1
        child.reset_stats()
        assert child.stats()["binance"]["requests"] == 0
