"""Small helpers for the sandbox tests."""

from __future__ import annotations

from typing import Any

import aiohttp

from sandbox import catalog, market
from sandbox.listing import Listing, utc_ms

FAR_FUTURE_MS = 2**62


async def fetch(url: str, params: dict[str, Any] | None = None) -> tuple[int, dict[str, str], Any]:
    """GET ``url`` and return (status, headers, decoded JSON body)."""
    query = {k: str(v) for k, v in (params or {}).items()}
    async with aiohttp.ClientSession() as session, session.get(url, params=query) as response:
        body = await response.json(content_type=None)
        return response.status, dict(response.headers), body


def listing(exchange: str, symbol: str, kind: str = "spot") -> Listing:
    found = catalog.by_symbol(exchange, kind, symbol)
    assert found is not None, (exchange, symbol, kind)
    return found


def expected_minutes(exchange: str, symbol: str, start_ms: int, end_ms: int, kind: str = "spot"):
    """1m candles the generator produces (closed history, no wall-clock cut)."""
    return market.minute_candles(7, listing(exchange, symbol, kind), start_ms, end_ms)


def ms(text: str) -> int:
    return utc_ms(text)


class FakeClock:
    """A settable wall clock for ``SandboxConfig(clock=...)`` (epoch milliseconds)."""

    def __init__(self, now_ms: int | None = None) -> None:
        self.now_ms = ms("2025-06-02T12:00:10") if now_ms is None else now_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, seconds: float) -> None:
        self.now_ms += int(seconds * 1000)
