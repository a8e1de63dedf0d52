"""The one small protocol every exchange client implements, and its typed errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

import polars as pl

from models.enums import Exchange, Interval, MarketKind


class ExchangeError(Exception):
    """An exchange answered with an error, or could not be reached.

    Every instance names the exchange, endpoint, symbol (when known), the HTTP status and the
    exchange's own error code, so a failure report needs nothing else.
    """

    def __init__(
        self,
        message: str,
        *,
        exchange: Exchange | str,
        endpoint: str,
        symbol: str | None = None,
        status: int | None = None,
        code: str | int | None = None,
    ) -> None:
        self.message = message
        self.exchange = str(exchange)
        self.endpoint = endpoint
        self.symbol = symbol
        self.status = status
        self.code = code
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [f"{self.exchange} {self.endpoint}"]
        if self.symbol:
            parts.append(f"symbol {self.symbol}")
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code is not None:
            parts.append(f"code {self.code}")
        return f"{self.message} ({', '.join(parts)})"

    def __reduce__(self):  # keep picklable for Prefect results/states
        return (
            _rebuild_error,
            (
                type(self),
                self.message,
                self.exchange,
                self.endpoint,
                self.symbol,
                self.status,
                self.code,
            ),
        )


def _rebuild_error(cls, message, exchange, endpoint, symbol, status, code):  # type: ignore[no-untyped-def]
    return cls(
        message, exchange=exchange, endpoint=endpoint, symbol=symbol, status=status, code=code
    )


class UnknownSymbol(ExchangeError):
    """The exchange does not list this symbol (or this market kind of it)."""


class BadRequest(ExchangeError):
    """A client error (4xx other than rate limits): retrying cannot help."""


class RateLimited(ExchangeError):
    """429/418 (or OKX 50011) still answered after the client's retries."""

    retry_after: float | None = None


class UnavailableAtSource(ExchangeError):
    """The exchange no longer serves a listing it dropped: a data request for an instrument
    resolved from history or by the exchange's id scheme (`BaseClient.resolve(...,
    unlisted=True)`) was answered "unknown instrument". The days asked for are *unavailable at
    the source* (reason: delisted), not failed: retrying cannot bring them back."""

    @property
    def reason(self) -> str:
        return self.message


class ExchangeUnavailable(ExchangeError):
    """5xx, timeouts, resets or undecodable bodies still failing after the client's retries."""


@dataclass
class RequestStats:
    """Counters a client keeps for reports and benchmarks."""

    requests: int = 0
    weight: int = 0
    retries: int = 0
    rate_limited: int = 0  # 429/418/50011 answers received
    rows: int = 0
    by_endpoint: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Instrument:
    exchange: Exchange
    symbol: str  # unified, BTCUSDT
    native_symbol: str  # BTCUSDT / BTC-USDT / BTC-USDT-SWAP
    base: str
    quote: str
    kind: MarketKind
    status: str


@runtime_checkable
class ExchangeClient(Protocol):
    """Async market-data client for one exchange (live or sandbox: only base URLs differ).

    Time windows are half-open `[start, end)` on the row's timestamp (candle open time,
    funding time, OI sample time), aware UTC datetimes. Every row in the window is returned
    exactly once, sorted ascending; unfinished candles are never returned. Frames follow
    `models.bronze.bronze_schema(exchange, dataset)`. Unlisted symbols raise `UnknownSymbol`.
    """

    exchange: Exchange
    stats: RequestStats

    async def instruments(self, kind: MarketKind) -> pl.DataFrame:
        """Bronze instruments frame for every listing of that kind."""
        ...

    async def resolve(self, symbol: str, kind: MarketKind, *, unlisted: bool = False) -> Instrument:
        """Map a unified symbol to the exchange's listing; raises `UnknownSymbol`. With
        `unlisted`, a symbol not in today's listing resolves from the remembered listing
        history or the exchange's id scheme (with a notice) instead."""
        ...

    async def ohlcv(
        self, symbol: str, interval: Interval, start: datetime, end: datetime
    ) -> pl.DataFrame:
        """Closed spot candles with open time in [start, end)."""
        ...

    async def funding(self, symbol: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Perpetual funding events with funding time in [start, end)."""
        ...

    async def open_interest(self, symbol: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Perpetual open-interest history at `OPEN_INTEREST_PERIOD` in [start, end)."""
        ...

    async def open_interest_snapshot(self, symbol: str) -> pl.DataFrame:
        """The current open interest of a perpetual (one row, source=snapshot)."""
        ...

    async def aclose(self) -> None: ...
