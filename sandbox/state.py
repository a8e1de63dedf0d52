"""Mutable per-server state: clock, counters, rate limiters, fault injector and overrides."""

from __future__ import annotations

import time
from collections import Counter
from datetime import date
from typing import Any

import numpy as np
from aiohttp import web

from sandbox.common import ApiError, drop_days
from sandbox.config import SANDBOX_EXCHANGES, SandboxConfig
from sandbox.faults import FaultInjector
from sandbox.limits import SlidingWindow, TokenBucket, WeightLimiter

_EPOCH = date(1970, 1, 1)

# OKX limits per rolling 2 s: endpoint path -> (requests, keyed by instrument?).
OKX_LIMITS: dict[str, tuple[int, bool]] = {
    "/api/v5/market/candles": (40, False),
    "/api/v5/market/history-candles": (20, False),
    "/api/v5/public/funding-rate-history": (10, True),
    "/api/v5/public/open-interest": (20, True),
    "/api/v5/public/instruments": (20, True),
    "/api/v5/market/tickers": (20, False),
    "/api/v5/rubik/stat/contracts/open-interest-history": (10, True),
    "/api/v5/public/time": (10, False),
}


def _scaled(capacity: float, scale: float) -> int:
    return max(1, int(capacity * scale))


class SandboxState:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.seed = config.seed
        self.faults = FaultInjector(config.seed, config.faults)
        self.limits_on = config.rate_limits == "real"
        self.reset_limits()
        self._fail = config.fail
        self._empty: dict[tuple[str, str], set[int]] = {}
        for exchange, symbol, day in config.empty:
            self._empty.setdefault((exchange, symbol), set()).add((day - _EPOCH).days)
        self.reset_stats()

    def reset_limits(self) -> None:
        """Fresh rate-limit state (no used weight, no bans)."""
        scale = self.config.rate_limit_scale
        self.binance_spot = WeightLimiter(_scaled(6000, scale))
        self.binance_futures = WeightLimiter(_scaled(2400, scale))
        self.binance_funding = SlidingWindow(_scaled(500, scale), 300.0)
        self.okx = {
            path: SlidingWindow(_scaled(limit, scale), 2.0)
            for path, (limit, _) in OKX_LIMITS.items()
        }
        self.coinbase = TokenBucket(10 * scale, _scaled(15, scale))

    # ------------------------------------------------------------------ clock

    def now_ms(self) -> int:
        if self.config.clock is not None:
            return int(self.config.clock())
        return int(time.time() * 1000)

    def now_s(self) -> float:
        return self.now_ms() / 1000 if self.config.clock is not None else time.time()

    # ------------------------------------------------------------------ overrides

    def check_fail(self, exchange: str, symbol: str, error: ApiError) -> None:
        """Raise ``error`` when (exchange, symbol) is configured to fail."""
        if (exchange, symbol) in self._fail:
            raise error

    def keep(self, exchange: str, symbol: str, ts: np.ndarray) -> np.ndarray:
        """Mask of rows to serve (rows on configured empty days are withheld)."""
        return drop_days(ts, self._empty.get((exchange, symbol), set()))

    # ------------------------------------------------------------------ stats

    def reset_stats(self) -> None:
        self._stats: dict[str, dict[str, Any]] = {
            name: {
                "requests": 0,
                "weight": 0,
                "rate_limited": 0,
                "errors": 0,
                "faults": 0,
                "by_path": Counter(),
            }
            for name in SANDBOX_EXCHANGES
        }

    def count(self, exchange: str, path: str) -> None:
        entry = self._stats[exchange]
        entry["requests"] += 1
        entry["by_path"][path] += 1

    def add(self, exchange: str, field: str, amount: int = 1) -> None:
        self._stats[exchange][field] += amount

    def stats(self) -> dict[str, dict[str, Any]]:
        """A JSON-ready copy of the counters."""
        return {
            name: {**entry, "by_path": dict(entry["by_path"])}
            for name, entry in self._stats.items()
        }


STATE = web.AppKey("sandbox_state", SandboxState)
