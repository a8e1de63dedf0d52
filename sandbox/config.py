"""Sandbox configuration: seed, fault profile, rate limits and per-market overrides."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

FaultProfile = Literal["none", "flaky", "hostile"]
RateLimitMode = Literal["real", "off"]
FAULT_PROFILES: tuple[str, ...] = ("none", "flaky", "hostile")
RATE_LIMIT_MODES: tuple[str, ...] = ("real", "off")
SANDBOX_EXCHANGES: tuple[str, ...] = ("binance", "coinbase", "okx")


@dataclass(frozen=True)
class SandboxConfig:
    """How a sandbox behaves.

    ``fail``: (exchange, unified symbol) pairs answered 503 on every request naming that symbol.
    ``empty``: (exchange, unified symbol, UTC date) triples whose rows are withheld (empty data).
    ``rate_limit_scale`` multiplies every rate-limit capacity (tests use small values).
    ``clock`` overrides the wall clock (epoch milliseconds); None means the real clock.
    """

    seed: int = 7
    faults: FaultProfile = "none"
    rate_limits: RateLimitMode = "off"
    fail: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    empty: frozenset[tuple[str, str, date]] = field(default_factory=frozenset)
    rate_limit_scale: float = 1.0
    clock: Callable[[], int] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if self.faults not in FAULT_PROFILES:
            raise ValueError(f"unknown fault profile {self.faults!r} (allowed: {FAULT_PROFILES})")
        if self.rate_limits not in RATE_LIMIT_MODES:
            raise ValueError(
                f"unknown rate-limit mode {self.rate_limits!r} (allowed: {RATE_LIMIT_MODES})"
            )
        if not self.rate_limit_scale > 0:
            raise ValueError(f"rate_limit_scale must be positive, got {self.rate_limit_scale!r}")
        object.__setattr__(self, "fail", frozenset(_pairs(self.fail)))
        object.__setattr__(self, "empty", frozenset(_triples(self.empty)))


def _exchange(name: object) -> str:
    text = str(name).lower()
    if text not in SANDBOX_EXCHANGES:
        raise ValueError(f"unknown exchange {name!r} (allowed: {SANDBOX_EXCHANGES})")
    return text


def _pairs(items: Iterable[tuple[str, str]]) -> Iterable[tuple[str, str]]:
    for item in items:
        exchange, symbol = item
        yield _exchange(exchange), str(symbol).upper()


def _triples(items: Iterable[tuple[str, str, date]]) -> Iterable[tuple[str, str, date]]:
    for item in items:
        exchange, symbol, day = item
        when = day if isinstance(day, date) else date.fromisoformat(str(day))
        yield _exchange(exchange), str(symbol).upper(), when
