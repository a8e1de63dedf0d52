"""Shared machinery of the exchange clients: session, rate limits, retries, error mapping."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

import aiohttp
import orjson
import polars as pl
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
)

from clients.allowance import AllowanceBackend, AsyncLimiter, LimiterKey, LocalAllowance, Ticket
from clients.frames import DecodeError, Provenance, RowsPage, empty_frame
from clients.pagination import PaginationError, Paginator, Params
from clients.protocol import (
    BadRequest,
    ExchangeError,
    ExchangeUnavailable,
    Instrument,
    RateLimited,
    RequestStats,
    UnavailableAtSource,
    UnknownSymbol,
)
from clients.ratelimit import LimitSpec
from models.enums import Dataset, Exchange, Interval, MarketKind
from models.errors import InputError
from models.symbols import split_symbol

T = TypeVar("T")
# A page of a cursor walk: a frame, or positional rows not yet typed into one (`RowsPage`).
PageT = TypeVar("PageT", pl.DataFrame, RowsPage)
log = logging.getLogger(__name__)

# Status of an instrument resolved by the exchange's id scheme (it is in no listing we have).
UNLISTED_STATUS = "unlisted"


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a client tries before giving up on a request."""

    attempts: int = 6
    base_delay: float = 0.25  # first backoff; doubles per retry, with jitter
    max_delay: float = 2.0
    timeout: float = 30.0  # whole request, seconds
    connect_timeout: float = 5.0  # reaching the host, seconds (an unreachable one fails fast)
    # Seconds after which a failing request is given up (after its current attempt), unless
    # the exchange is rate limiting (its Retry-After pauses are honoured up to `attempts`):
    # with the task retries, an unreachable exchange fails its partitions within a minute.
    budget: float = 8.0
    rate_limit_pause: float = 2.0  # pause after a 429 without Retry-After
    firewall_pause: float = 30.0  # pause after a firewall refusal (Binance 403) without one


class Retryable(Exception):
    """An attempt failed in a way another attempt may fix."""

    def __init__(self, error: ExchangeError, *, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


@dataclass(frozen=True)
class Request:
    """One GET to an exchange, with what the error messages need."""

    host: str  # key into the client's base URLs
    path: str
    params: Mapping[str, str | int]
    symbol: str | None = None
    cost: float = 1.0  # weight charged to the host's main limiter


def to_ms(moment: datetime, name: str) -> int:
    """Epoch milliseconds of an aware datetime; naive datetimes are refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InputError(f"{name} must be an aware UTC datetime, got naive {moment.isoformat()}")
    return int(moment.timestamp() * 1000)


def now_ms() -> int:
    return int(time.time() * 1000)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds of a `Retry-After` header, if any."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class BaseClient(ABC):
    """Session, shared limiters, tenacity retries and stats; exchanges add endpoints."""

    exchange: Exchange
    hosts: ClassVar[Mapping[str, str]]  # host key -> live base URL
    supported_intervals: ClassVar[frozenset[Interval]] = frozenset(Interval)

    def __init__(
        self,
        *,
        base_urls: Mapping[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
        rate_limits: bool = True,
        retry: RetryPolicy | None = None,
        max_concurrency: int = 8,
        rate_limit_scale: float = 1.0,
        allowance: AllowanceBackend | None = None,
    ) -> None:
        self.base_urls = dict(base_urls or self.hosts)
        self.rate_limits = rate_limits
        self.rate_limit_scale = rate_limit_scale
        self.allowance = allowance or LocalAllowance()
        self.retry = retry or RetryPolicy()
        self.stats = RequestStats()
        self._session = session
        self._owns_session = session is None
        self._max_concurrency = max_concurrency
        self._timeout = aiohttp.ClientTimeout(
            total=self.retry.timeout, sock_connect=self.retry.connect_timeout
        )
        self._instruments: dict[MarketKind, dict[str, Instrument]] = {}
        self._instrument_frames: dict[MarketKind, pl.DataFrame] = {}
        self._instrument_locks: dict[MarketKind, asyncio.Lock] = {}
        # Instruments resolved outside today's listing, and the listing history to use.
        self._unlisted: dict[tuple[MarketKind, str], Instrument] = {}
        self._history: dict[tuple[MarketKind, str], Instrument] = {}
        self._gave_up: dict[str, float] = {}  # host -> when a request last spent its budget

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=aiohttp.TCPConnector(limit=32)
            )
            self._owns_session = True
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and self._owns_session and not self._session.closed:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- rate limits -----------------------------------------------------------------------

    def limit_specs(self, request: Request) -> Sequence[tuple[str, LimitSpec, float]]:
        """The (bucket, spec, cost) pairs a request is charged to; exchanges override."""
        return ()

    def limiters(self, request: Request) -> list[tuple[AsyncLimiter, float]]:
        base = self.base_urls[request.host]
        scale = self.rate_limit_scale
        key_scale = "" if scale == 1.0 else f"x{scale}"
        return [
            (
                self.allowance.limiter(
                    (self.exchange.value, bucket, base + key_scale),
                    spec.scaled(scale) if self.rate_limits else None,
                    self.gate_key,
                ),
                cost,
            )
            for bucket, spec, cost in self.limit_specs(request)
        ]

    @property
    def gate_key(self) -> LimiterKey:
        hosts = ",".join(sorted(set(self.base_urls.values())))
        return (self.exchange.value, "gate", hosts)

    @property
    def gate(self) -> AsyncLimiter:
        """The exchange-wide gate every request passes: a 429 closes it for all of them (for
        every process, with a shared allowance)."""
        return self.allowance.limiter(self.gate_key, None, self.gate_key)

    async def observe_headers(
        self,
        request: Request,
        headers: Mapping[str, str],
        limiters: list[tuple[AsyncLimiter, float]],
    ) -> None:
        """Align limiters with usage headers the exchange sends (Binance)."""
        return None  # only exchanges that send usage headers override this

    # -- requests --------------------------------------------------------------------------

    @abstractmethod
    def classify(
        self, request: Request, status: int, headers: Mapping[str, str], body: bytes
    ) -> Any:
        """Decode a response or raise: `Retryable` for transient failures, else ExchangeError."""

    def error(
        self,
        cls: type[ExchangeError],
        message: str,
        request: Request,
        *,
        status: int | None = None,
        code: str | int | None = None,
    ) -> ExchangeError:
        return cls(
            message,
            exchange=self.exchange,
            endpoint=request.path,
            symbol=request.symbol,
            status=status,
            code=code,
        )

    def decode_json(self, request: Request, status: int, body: bytes) -> Any:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            shown = body[:120].decode("utf-8", "replace")
            raise Retryable(
                self.error(
                    ExchangeUnavailable,
                    f"undecodable response body {shown!r}",
                    request,
                    status=status,
                )
            ) from None

    async def _attempt(self, request: Request) -> Any:
        limiters = self.limiters(request)
        gate = self.gate
        # Every limiter holds the request from its send until its answer (see `finished`).
        tickets: list[tuple[AsyncLimiter, Ticket]] = []
        try:
            while True:
                await gate.acquire(0)
                for limiter, cost in limiters:
                    tickets.append((limiter, await limiter.acquire(cost)))
                if await gate.paused_for() <= 0:
                    break
                # A 429 closed the gate while this request waited for its slot: book a fresh
                # one after the pause (the unsent one stays counted: errs on the safe side).
                await self._finished(tickets)
            return await self._send(request, limiters, gate, tickets)
        finally:
            await self._finished(tickets)

    @staticmethod
    async def _finished(tickets: list[tuple[AsyncLimiter, Ticket]]) -> None:
        while tickets:
            limiter, ticket = tickets.pop()
            await limiter.finished(ticket)

    async def _send(
        self,
        request: Request,
        limiters: list[tuple[AsyncLimiter, float]],
        gate: AsyncLimiter,
        tickets: list[tuple[AsyncLimiter, Ticket]],
    ) -> Any:
        url = self.base_urls[request.host] + request.path
        self.stats.requests += 1
        self.stats.weight += int(request.cost)
        self.stats.by_endpoint[request.path] = self.stats.by_endpoint.get(request.path, 0) + 1
        try:
            async with self.session.get(
                url, params=dict(request.params), timeout=self._timeout
            ) as response:
                body = await response.read()
                status = response.status
                headers = response.headers
        except (TimeoutError, aiohttp.ClientError) as exc:
            await self._finished(tickets)
            kind = type(exc).__name__
            raise Retryable(
                self.error(ExchangeUnavailable, f"request failed: {kind} {exc}", request)
            ) from None
        await self._finished(tickets)  # answered: the exchange has counted it by now
        await self.observe_headers(request, headers, limiters)
        try:
            return self.classify(request, status, headers, body)
        except Retryable as exc:
            if isinstance(exc.error, RateLimited):
                self.stats.rate_limited += 1
                # Hold every request to this exchange (in every process drawing on the same
                # allowance) until Retry-After.
                await gate.pause(exc.retry_after or self.retry.rate_limit_pause)
            raise

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        backoff = min(self.retry.max_delay, self.retry.base_delay * 2 ** (state.attempt_number - 1))
        jittered = backoff * random.uniform(0.5, 1.0)
        if isinstance(exc, Retryable) and exc.retry_after is not None:
            return max(exc.retry_after, jittered)
        return jittered

    def _stop(self, state: RetryCallState, host: str) -> bool:
        """Stop at `attempts`, or past `budget` seconds unless the exchange is rate limiting;
        a request to a host that another request gave up on moments ago (requests queued
        behind it, e.g. for the listings) stops at its first failure: the budget is spent."""
        if state.attempt_number >= self.retry.attempts:
            return True
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Retryable) and isinstance(exc.error, RateLimited):
            return False
        gave_up = self._gave_up.get(host)
        if gave_up is not None and time.monotonic() - gave_up < self.retry.max_delay:
            return True
        return (state.seconds_since_start or 0.0) >= self.retry.budget

    async def get(self, request: Request, decode: Callable[[Any], Any] | None = None) -> Any:
        """Send `request` with retries and return `decode(payload)` (or the payload).

        A page of the wrong shape (`DecodeError` from `decode`) is retried like a truncated
        body. After the last attempt the failure becomes `RateLimited` or
        `ExchangeUnavailable`; client errors are raised at once.
        """

        async def attempt() -> Any:
            payload = await self._attempt(request)
            if decode is None:
                return payload
            try:
                return decode(payload)
            except DecodeError as exc:
                raise Retryable(
                    self.error(ExchangeUnavailable, f"malformed page: {exc}", request)
                ) from None

        def count_retry(state: RetryCallState) -> None:
            self.stats.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            log.info("retrying (attempt %d): %s", state.attempt_number + 1, exc)

        retrying = AsyncRetrying(
            stop=lambda state: self._stop(state, request.host),
            wait=self._wait,
            retry=retry_if_exception_type(Retryable),
            before_sleep=count_retry,
            reraise=True,
        )
        try:
            async for try_ in retrying:
                with try_:
                    return await attempt()
        except UnknownSymbol as exc:
            raise self.unavailable(exc) from None
        except Retryable as exc:
            self._gave_up[request.host] = time.monotonic()
            error = exc.error
            final_cls = RateLimited if isinstance(error, RateLimited) else ExchangeUnavailable
            final = self.error(
                final_cls,
                f"{error.message}; gave up after {retrying.statistics.get('attempt_number')}"
                " attempts",
                request,
                status=error.status,
                code=error.code,
            )
            if isinstance(final, RateLimited):
                final.retry_after = exc.retry_after
            raise final from None
        raise AssertionError("unreachable: tenacity ends with a result or an exception")

    # -- instruments -----------------------------------------------------------------------

    @abstractmethod
    async def fetch_instruments(self, kind: MarketKind) -> pl.DataFrame:
        """Bronze instruments frame of one kind straight from the exchange."""

    async def instruments(self, kind: MarketKind) -> pl.DataFrame:
        """Bronze instruments frame for every listing of that kind (cached per client)."""
        lock = self._instrument_locks.setdefault(kind, asyncio.Lock())
        async with lock:
            if kind not in self._instrument_frames:
                frame = await self.fetch_instruments(kind)
                self._instrument_frames[kind] = frame
                self._instruments[kind] = self._by_symbol(frame, kind)
            return self._instrument_frames[kind]

    def _by_symbol(self, frame: pl.DataFrame, kind: MarketKind) -> dict[str, Instrument]:
        """Listings by unified symbol. Clients resolve collisions in `fetch_instruments`; a
        symbol still named twice keeps its first listing (never silently the last), logged."""
        found: dict[str, Instrument] = {}
        for row in frame.iter_rows(named=True):
            symbol = row["symbol"]
            if symbol in found:
                log.warning(
                    "%s lists %s twice (%s, %s): %s kept",
                    self.exchange,
                    symbol,
                    found[symbol].native_symbol,
                    row["native_symbol"],
                    found[symbol].native_symbol,
                )
                continue
            found[symbol] = Instrument(
                exchange=self.exchange,
                symbol=symbol,
                native_symbol=row["native_symbol"],
                base=row["base"],
                quote=row["quote"],
                kind=kind,
                status=row["status"],
            )
        return found

    async def resolve(self, symbol: str, kind: MarketKind, *, unlisted: bool = False) -> Instrument:
        """Map a unified symbol to the exchange's listing; raises `UnknownSymbol`.

        Today's listing comes first, whatever the listing's status (a Binance `BREAK` symbol,
        a delivering perpetual, a Coinbase `delisted` product keep their status). A symbol
        missing from it resolves only with `unlisted` (a backfill of a symbol that no longer
        trades), and is then remembered by this client: from the listing history given to
        `remember_listings` (its recorded native id), else by the exchange's documented id
        scheme (`native_id`), each with a notice. A data request for such an instrument
        that the exchange answers "unknown instrument" raises `UnavailableAtSource`.
        """
        await self.instruments(kind)
        key = symbol.upper()
        found = self._instruments[kind].get(key) or self._unlisted.get((kind, key))
        if found is not None:
            return found
        if unlisted:
            found = self._from_history(key, kind) or self._by_scheme(key, kind)
        if found is None:
            raise UnknownSymbol(
                f"{symbol} is not listed on {self.exchange} ({kind})",
                exchange=self.exchange,
                endpoint="instruments",
                symbol=symbol,
            )
        self._unlisted[(kind, key)] = found
        return found

    def remember_listings(self, history: pl.DataFrame) -> None:
        """Listings this exchange had (silver instruments history rows: exchange, symbol,
        native_symbol, base, quote, kind, status; other columns ignored), for `resolve` of a
        symbol no longer in today's listing. Rows of other exchanges are ignored."""
        if history.is_empty():
            return
        rows = history.filter(pl.col("exchange") == self.exchange.value)
        if "last_seen" in rows.columns:  # the newest row of a symbol wins
            rows = rows.sort("last_seen", nulls_last=False)
        for row in rows.iter_rows(named=True):
            kind = MarketKind(row["kind"])
            self._history[(kind, row["symbol"])] = Instrument(
                exchange=self.exchange,
                symbol=row["symbol"],
                native_symbol=row["native_symbol"],
                base=row["base"],
                quote=row["quote"],
                kind=kind,
                status=row["status"],
            )

    async def quote_volumes(
        self, kind: MarketKind, symbols: Sequence[str] | None = None
    ) -> dict[str, float]:
        """24 h traded volume in quote currency per unified symbol of today's listing, from
        the exchange's ticker endpoint (`symbols`: only those, where the exchange asks per
        symbol). Exchanges without one raise `BadRequest`."""
        raise self.unsupported(Dataset.INSTRUMENTS, "tickers", "", "no 24h ticker endpoint")

    async def natives(self, kind: MarketKind) -> dict[str, str]:
        """Today's listing: native id -> unified symbol."""
        frame = await self.instruments(kind)
        return dict(zip(frame["native_symbol"].to_list(), frame["symbol"].to_list(), strict=True))

    def native_id(self, base: str, quote: str, kind: MarketKind) -> str | None:
        """The exchange's documented id of a listing (None: no scheme, or no such market)."""
        return None

    def _from_history(self, symbol: str, kind: MarketKind) -> Instrument | None:
        found = self._history.get((kind, symbol))
        if found is not None:
            log.warning(
                "%s: %s (%s) is not in today's listing: using its recorded id %s (status %s)",
                self.exchange,
                symbol,
                kind,
                found.native_symbol,
                found.status,
            )
        return found

    def _by_scheme(self, symbol: str, kind: MarketKind) -> Instrument | None:
        try:
            base, quote = split_symbol(symbol)
        except InputError:
            return None
        native = self.native_id(base, quote, kind)
        if native is None:
            return None
        log.warning(
            "%s: %s (%s) is not in today's listing: trying the documented id %s",
            self.exchange,
            symbol,
            kind,
            native,
        )
        return Instrument(
            exchange=self.exchange,
            symbol=symbol,
            native_symbol=native,
            base=base,
            quote=quote,
            kind=kind,
            status=UNLISTED_STATUS,
        )

    def unavailable(self, error: UnknownSymbol) -> ExchangeError:
        """`error` as `UnavailableAtSource` when it names an instrument resolved outside
        today's listing (the exchange dropped it and no longer serves it); else `error`."""
        symbol = (error.symbol or "").upper()
        found = [inst for (_, key), inst in self._unlisted.items() if key == symbol]
        if not found:
            return error
        return UnavailableAtSource(
            f"{found[0].native_symbol} is no longer served: {self.exchange} dropped it from "
            f"its listing and answers {error.message!r} (delisted)",
            exchange=self.exchange,
            endpoint=error.endpoint,
            symbol=error.symbol,
            status=error.status,
            code=error.code,
        )

    # -- datasets (ExchangeClient protocol; each exchange implements them) -----------------

    @abstractmethod
    async def ohlcv(
        self, symbol: str, interval: Interval, start: datetime, end: datetime
    ) -> pl.DataFrame:
        """Closed spot candles with open time in [start, end)."""

    @abstractmethod
    async def funding(self, symbol: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Perpetual funding events with funding time in [start, end)."""

    @abstractmethod
    async def open_interest(self, symbol: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Perpetual open-interest history at `OPEN_INTEREST_PERIOD` in [start, end)."""

    @abstractmethod
    async def open_interest_snapshot(self, symbol: str) -> pl.DataFrame:
        """The current open interest of a perpetual (one row, source=snapshot)."""

    # -- helpers ---------------------------------------------------------------------------

    def history_depth(self, dataset: Dataset) -> timedelta | None:
        """How far back the exchange serves `dataset` (None: its whole history)."""
        return None

    def check_interval(self, interval: Interval, endpoint: str, symbol: str) -> None:
        if interval not in self.supported_intervals:
            allowed = ", ".join(i.value for i in Interval if i in self.supported_intervals)
            raise BadRequest(
                f"interval {interval} is not served by {self.exchange} (allowed: {allowed})",
                exchange=self.exchange,
                endpoint=endpoint,
                symbol=symbol,
            )

    def unsupported(self, dataset: Dataset, endpoint: str, symbol: str, why: str) -> BadRequest:
        return BadRequest(
            f"{self.exchange} offers no {dataset} data: {why}",
            exchange=self.exchange,
            endpoint=endpoint,
            symbol=symbol,
        )

    def empty(self, dataset: Dataset) -> pl.DataFrame:
        return empty_frame(self.exchange, dataset)

    def provenance(
        self, instrument: Instrument, interval: str | None, start: int | None, end: int | None
    ) -> Provenance:
        return Provenance(
            exchange=self.exchange,
            symbol=instrument.symbol,
            native_symbol=instrument.native_symbol,
            interval=interval,
            window_start=start,
            window_end=end,
            fetched_at=now_ms(),
        )

    async def gather_limited(self, calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
        """Run the calls concurrently, at most `max_concurrency` at a time; results in order."""
        semaphore = asyncio.Semaphore(self._max_concurrency)

        async def run(call: Callable[[], Awaitable[T]]) -> T:
            async with semaphore:
                return await call()

        return list(await asyncio.gather(*(run(c) for c in calls)))

    async def paginate(
        self,
        pager: Paginator,
        fetch_page: Callable[[Params], Awaitable[PageT]],
        ts_column: str,
        *,
        endpoint: str,
        symbol: str,
    ) -> list[PageT]:
        """`run_cursor`, with a broken page order reported as the exchange's failure."""
        try:
            return await run_cursor(pager, fetch_page, ts_column)
        except PaginationError as exc:
            raise ExchangeUnavailable(
                f"inconsistent pages: {exc}",
                exchange=self.exchange,
                endpoint=endpoint,
                symbol=symbol,
            ) from None

    def count_rows(self, frame: pl.DataFrame) -> pl.DataFrame:
        self.stats.rows += frame.height
        return frame


async def run_cursor(
    pager: Paginator,
    fetch_page: Callable[[Params], Awaitable[PageT]],
    ts_column: str,
) -> list[PageT]:
    """Drive one paginator to its end; the pages in the order received.

    A page that breaks the cursor's invariants (`PaginationError`) is reported as
    `ExchangeUnavailable` by `fetch_page`'s client, see `BaseClient.paginate`.
    """
    pages: list[PageT] = []
    while not pager.done:
        page = await fetch_page(pager.params())
        if isinstance(page, RowsPage):
            pager.advance(page.timestamps(ts_column))
        else:
            pager.advance(page.get_column(ts_column).cast(pl.Int64).to_list())
        pages.append(page)
    return pages
