"""Binance spot (`api.binance.com`) and USD-M futures (`fapi.binance.com`) market data."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, ClassVar

import orjson
import polars as pl

from clients.allowance import AsyncLimiter
from clients.base import (
    BaseClient,
    Request,
    Retryable,
    now_ms,
    retry_after_seconds,
    to_ms,
)
from clients.binance_archive import (
    ARCHIVE_URL,
    REST_SOURCE,
    SOURCES,
    ArchiveReader,
    ArchiveUnavailable,
    Segment,
    days_of,
    funding_path,
    klines_path,
    metrics_path,
    parse_funding,
    parse_klines,
    parse_metrics,
    plan_segments,
)
from clients.frames import (
    DecodeError,
    Listing,
    Provenance,
    RowsPage,
    concat,
    instruments_frame,
    objects_frame,
    pages_frame,
    rows_page,
    window_filter,
)
from clients.pagination import AscendingCursor, Params, plan_windows
from clients.protocol import (
    BadRequest,
    ExchangeUnavailable,
    Instrument,
    RateLimited,
    UnknownSymbol,
)
from clients.ratelimit import LimitSpec
from models.enums import OPEN_INTEREST_PERIOD, Dataset, Exchange, Interval, MarketKind
from models.symbols import unify

KLINES = "/api/v3/klines"
FUTURES_KLINES = "/fapi/v1/klines"
SPOT_INFO = "/api/v3/exchangeInfo"
FUTURES_INFO = "/fapi/v1/exchangeInfo"
FUNDING = "/fapi/v1/fundingRate"
OI_SNAPSHOT = "/fapi/v1/openInterest"
OI_HISTORY = "/futures/data/openInterestHist"
SPOT_TICKERS = "/api/v3/ticker/24hr"
FUTURES_TICKERS = "/fapi/v1/ticker/24hr"

KLINES_LIMIT = 1000
# USD-M klines weigh 2 below 500 rows, 5 up to 1,000: 499 rows is the most candles per weight.
FUTURES_KLINES_LIMIT = 499
FUNDING_LIMIT = 1000
OI_HISTORY_LIMIT = 500
OI_HISTORY_DEPTH = timedelta(days=30)
# Requests starting this close to the 30-day edge are moved inside it (clock skew, latency).
OI_HISTORY_EDGE = timedelta(minutes=5)

# Request weight per endpoint (the spot and futures docs); both limits are rolling per minute.
WEIGHTS: Mapping[str, int] = {
    KLINES: 2,
    FUTURES_KLINES: 2,
    SPOT_INFO: 20,
    FUTURES_INFO: 1,
    FUNDING: 1,
    SPOT_TICKERS: 80,  # every symbol
    FUTURES_TICKERS: 40,  # every symbol
    OI_SNAPSHOT: 1,
    OI_HISTORY: 0,
}
SPOT_WEIGHT = LimitSpec("window", 6000, 60.0, margin=0.5, budget=0.97)
FUTURES_WEIGHT = LimitSpec("window", 2400, 60.0, margin=0.5, budget=0.97)
# fundingRate shares 500 requests / 5 min with fundingInfo; /futures/data has 1000 / 5 min.
FUNDING_REQUESTS = LimitSpec("window", 500, 300.0, margin=0.5, budget=0.97)
FUTURES_DATA_REQUESTS = LimitSpec("window", 1000, 300.0, margin=0.5, budget=0.97)

UNKNOWN_SYMBOL_CODES = frozenset({-1121})
# Perpetual contract types: `PERPETUAL_DELIVERING` is a perpetual being delisted (it trades,
# and its history stays, until delivery), so it is listed like any other.
PERPETUAL_TYPES = frozenset({"PERPETUAL", "PERPETUAL_DELIVERING"})
REST = {"source": REST_SOURCE}
log = logging.getLogger(__name__)


class BinanceClient(BaseClient):
    """Spot klines and instruments; USD-M perpetual funding and open interest."""

    exchange: Exchange = Exchange.BINANCE
    hosts: ClassVar[Mapping[str, str]] = {
        "api": "https://api.binance.com",
        "fapi": "https://fapi.binance.com",
    }
    supported_intervals: ClassVar[frozenset[Interval]] = frozenset(Interval)

    def __init__(
        self,
        *,
        source: str = REST_SOURCE,
        archive_url: str | None = None,
        archive_cache_bytes: int = 192 * 2**20,
        archive_attempts: int = 3,
        **kwargs: Any,
    ) -> None:
        """`source`: `rest` (default here; the pipeline passes the `BINANCE_SOURCE` setting,
        default `auto`), `auto` (archive for closed periods, REST for the rest and for what the
        archive lacks) or `archive` (archive only: a missing or unusable file is an error naming
        it). `archive_url` is the data.binance.vision base (a sandbox serves it)."""
        super().__init__(**kwargs)
        if source not in SOURCES:
            raise ValueError(f"unknown Binance source {source!r} (allowed: {', '.join(SOURCES)})")
        self.source = source
        self.archive = ArchiveReader(
            archive_url or ARCHIVE_URL,
            lambda: self.session,
            attempts=archive_attempts,
            cache_bytes=archive_cache_bytes,
            timeout=max(self.retry.timeout, 120.0),
        )

    # -- transport -------------------------------------------------------------------------

    def limit_specs(self, request: Request) -> Sequence[tuple[str, LimitSpec, float]]:
        if request.host == "api":
            return [("api-weight", SPOT_WEIGHT, request.cost)]
        specs = [("fapi-weight", FUTURES_WEIGHT, request.cost)]
        if request.path == FUNDING:
            specs.append(("fapi-funding", FUNDING_REQUESTS, 1.0))
        elif request.path.startswith("/futures/data/"):
            specs.append(("futures-data", FUTURES_DATA_REQUESTS, 1.0))
        return specs

    async def observe_headers(
        self,
        request: Request,
        headers: Mapping[str, str],
        limiters: list[tuple[AsyncLimiter, float]],
    ) -> None:
        used = headers.get("X-MBX-USED-WEIGHT-1M") or headers.get("X-MBX-USED-WEIGHT")
        if used is None or not limiters:
            return
        try:
            weight = float(used)
        except ValueError:
            return
        await limiters[0][0].observe_used(weight)

    def classify(
        self, request: Request, status: int, headers: Mapping[str, str], body: bytes
    ) -> Any:
        if status == 200:
            return self.decode_json(request, status, body)
        code, message = _error_body(body)
        if status in (418, 429):
            retry_after = retry_after_seconds(headers)
            error = self.error(
                RateLimited, message or "rate limited", request, status=status, code=code
            )
            raise Retryable(error, retry_after=retry_after)
        if status == 403:
            # The web application firewall's limit (the body may be an HTML page): back off
            # like a 429, for every process, never in a tight loop.
            shown = "firewall limit (HTTP 403)" + (f": {message}" if message else "")
            error = self.error(RateLimited, shown[:200], request, status=status, code=code)
            pause = retry_after_seconds(headers) or self.retry.firewall_pause
            raise Retryable(error, retry_after=pause)
        if status >= 500:
            raise Retryable(
                self.error(
                    ExchangeUnavailable,
                    message or "server error",
                    request,
                    status=status,
                    code=code,
                )
            )
        cls = UnknownSymbol if code in UNKNOWN_SYMBOL_CODES else BadRequest
        raise self.error(cls, message or "client error", request, status=status, code=code)

    def request(self, host: str, path: str, params: Params, symbol: str | None) -> Request:
        return Request(host, path, params, symbol=symbol, cost=WEIGHTS.get(path, 1))

    # -- instruments -----------------------------------------------------------------------

    def native_id(self, base: str, quote: str, kind: MarketKind) -> str | None:
        """`BASEQUOTE` on both hosts (spot pairs and USDT-margined perpetuals)."""
        return f"{base}{quote}"

    async def quote_volumes(
        self, kind: MarketKind, symbols: Sequence[str] | None = None
    ) -> dict[str, float]:
        """`quoteVolume` of `/api/v3/ticker/24hr` (spot) or `/fapi/v1/ticker/24hr`, every
        symbol in one request (weight 80 and 40)."""
        natives = await self.natives(kind)
        host, path = ("api", SPOT_TICKERS) if kind is MarketKind.SPOT else ("fapi", FUTURES_TICKERS)
        payload = await self.get(self.request(host, path, {}, None))
        if not isinstance(payload, list):
            raise ExchangeUnavailable(
                "ticker/24hr is not a list", exchange=self.exchange, endpoint=path
            )
        out: dict[str, float] = {}
        for row in payload:
            if not isinstance(row, dict) or row.get("symbol") not in natives:
                continue
            try:
                out[natives[row["symbol"]]] = float(row.get("quoteVolume") or 0.0)
            except (TypeError, ValueError):
                continue
        wanted = set(symbols) if symbols is not None else None
        return {k: v for k, v in out.items() if wanted is None or k in wanted}

    async def fetch_instruments(self, kind: MarketKind) -> pl.DataFrame:
        """Every symbol of exchangeInfo, whatever its status (a `BREAK` symbol's klines are
        still served), and every perpetual, delivering ones included."""
        if kind is MarketKind.SPOT:
            payload = await self.get(self.request("api", SPOT_INFO, {}, None))
            listings = [
                _listing(s, kind)
                for s in _symbols(payload, SPOT_INFO)
                if s.get("baseAsset") and s.get("quoteAsset")
            ]
        else:
            payload = await self.get(self.request("fapi", FUTURES_INFO, {}, None))
            listings = [
                _listing(s, kind)
                for s in _symbols(payload, FUTURES_INFO)
                if s.get("contractType") in PERPETUAL_TYPES and s.get("baseAsset")
            ]
        return instruments_frame(self.exchange, listings, now_ms())

    # -- datasets --------------------------------------------------------------------------

    def history_depth(self, dataset: Dataset) -> timedelta | None:
        return OI_HISTORY_DEPTH if dataset is Dataset.OPEN_INTEREST else None

    async def ohlcv(
        self,
        symbol: str,
        interval: Interval,
        start: datetime,
        end: datetime,
        *,
        kind: MarketKind = MarketKind.SPOT,
    ) -> pl.DataFrame:
        """Closed klines of the spot pair (`kind=PERP`: the USD-M perpetual) with open time in
        [start, end): archive files for closed periods, REST for the rest (see `source`)."""
        endpoint = KLINES if kind is MarketKind.SPOT else FUTURES_KLINES
        self.check_interval(interval, endpoint, symbol)
        start_ms, end_ms = to_ms(start, "start"), to_ms(end, "end")
        inst = await self.resolve(symbol, kind)
        prov = self.provenance(inst, interval.value, start_ms, end_ms)
        rest = partial(self._rest_klines, inst, interval, kind, prov)
        frames = await self._by_source(
            start_ms,
            end_ms,
            rest,
            lambda seg: klines_path(kind, inst.native_symbol, interval.value, seg.period or ""),
            parse_klines,
            "open_time",
            prov,
            Dataset.OHLCV,
        )
        frame = concat(frames, self.exchange, Dataset.OHLCV)
        frame = window_filter(frame, "open_time", start_ms, end_ms)
        # The unfinished candle closes in the future.
        now = now_ms()
        if frame.height and frame.get_column("close_time").max() >= now:  # type: ignore[operator]
            frame = frame.filter(pl.col("close_time") < now)
        return self.count_rows(frame)

    async def _rest_klines(
        self,
        inst: Instrument,
        interval: Interval,
        kind: MarketKind,
        prov: Provenance,
        start_ms: int,
        end_ms: int,
    ) -> pl.DataFrame:
        spot = kind is MarketKind.SPOT
        host, path = ("api", KLINES) if spot else ("fapi", FUTURES_KLINES)
        limit = KLINES_LIMIT if spot else FUTURES_KLINES_LIMIT

        async def page(params: Params) -> RowsPage:
            query = {"symbol": inst.native_symbol, "interval": interval.value, **params}
            req = self.request(host, path, query, inst.symbol)
            return await self.get(
                req, lambda p: rows_page(p, Dataset.OHLCV, self.exchange, arity=12)
            )

        windows = plan_windows(start_ms, end_ms, step=interval.ms, per_request=limit)
        results = await self.gather_limited(
            [
                partial(
                    self.paginate,
                    AscendingCursor(w.start, w.end, limit=limit, step=interval.ms),
                    page,
                    "open_time",
                    endpoint=path,
                    symbol=inst.symbol,
                )
                for w in windows
            ]
        )
        # Every page typed as one frame (one build, not one per page).
        pages = [p for window_pages in results for p in window_pages]
        return pages_frame(pages, Dataset.OHLCV, prov, constants=REST)

    async def funding(self, symbol: str, start: datetime, end: datetime) -> pl.DataFrame:
        start_ms, end_ms = to_ms(start, "start"), to_ms(end, "end")
        inst = await self.resolve(symbol, MarketKind.PERP)
        prov = self.provenance(inst, None, start_ms, end_ms)

        async def page(params: Params) -> pl.DataFrame:
            req = self.request("fapi", FUNDING, {"symbol": inst.native_symbol, **params}, symbol)
            return await self.get(
                req, lambda p: objects_frame(p, Dataset.FUNDING, prov, constants=REST)
            )

        async def rest(lo: int, hi: int) -> pl.DataFrame:
            pages = await self.paginate(
                AscendingCursor(lo, hi, limit=FUNDING_LIMIT),
                page,
                "fundingTime",
                endpoint=FUNDING,
                symbol=symbol,
            )
            return concat(pages, self.exchange, Dataset.FUNDING)

        frames = await self._by_source(
            start_ms,
            end_ms,
            rest,
            lambda seg: funding_path(inst.native_symbol, seg.period or ""),
            parse_funding,
            "fundingTime",
            prov,
            Dataset.FUNDING,
            daily=False,  # fundingRate files are monthly
        )
        frame = window_filter(
            concat(frames, self.exchange, Dataset.FUNDING), "fundingTime", start_ms, end_ms
        )
        return self.count_rows(frame)

    async def open_interest(self, symbol: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Open interest at `OPEN_INTEREST_PERIOD`: the daily `metrics` files (5-minute rows,
        kept on the period's grid) for closed days, REST (its last 30 days) for the rest."""
        start_ms, end_ms = to_ms(start, "start"), to_ms(end, "end")
        inst = await self.resolve(symbol, MarketKind.PERP)
        period = OPEN_INTEREST_PERIOD
        prov = self.provenance(inst, period.value, start_ms, end_ms)

        def parse(csv: bytes) -> pl.DataFrame:
            rows = parse_metrics(csv)
            return rows.filter(pl.col("timestamp") % period.ms == 0)

        frames = await self._by_source(
            start_ms,
            end_ms,
            partial(self._rest_open_interest, inst, prov),
            lambda seg: metrics_path(inst.native_symbol, seg.period or ""),
            parse,
            "timestamp",
            prov,
            Dataset.OPEN_INTEREST,
            monthly=False,  # metrics files are daily
        )
        frame = concat(frames, self.exchange, Dataset.OPEN_INTEREST)
        return self.count_rows(window_filter(frame, "timestamp", start_ms, end_ms))

    async def _rest_open_interest(
        self, inst: Instrument, prov: Provenance, start_ms: int, end_ms: int
    ) -> pl.DataFrame:
        period = OPEN_INTEREST_PERIOD
        oldest = now_ms() - int((OI_HISTORY_DEPTH - OI_HISTORY_EDGE).total_seconds() * 1000)
        first = max(start_ms, oldest)
        if first >= end_ms:
            return self.empty(Dataset.OPEN_INTEREST)

        async def page(params: Params) -> pl.DataFrame:
            query = {"symbol": inst.native_symbol, "period": period.value, **params}
            req = self.request("fapi", OI_HISTORY, query, inst.symbol)
            return await self.get(
                req,
                lambda p: objects_frame(
                    p, Dataset.OPEN_INTEREST, prov, constants={"source": "history"}
                ),
            )

        windows = plan_windows(
            first, end_ms, step=period.ms, per_request=OI_HISTORY_LIMIT, align=False
        )
        results = await self.gather_limited(
            [
                partial(
                    self.paginate,
                    AscendingCursor(w.start, w.end, limit=OI_HISTORY_LIMIT, step=period.ms),
                    page,
                    "timestamp",
                    endpoint=OI_HISTORY,
                    symbol=inst.symbol,
                )
                for w in windows
            ]
        )
        return concat([p for pages in results for p in pages], self.exchange, Dataset.OPEN_INTEREST)

    # -- archive ---------------------------------------------------------------------------

    async def _by_source(
        self,
        start_ms: int,
        end_ms: int,
        rest: Callable[[int, int], Awaitable[pl.DataFrame]],
        path_of: Callable[[Segment], str],
        parse: Callable[[bytes], pl.DataFrame],
        ts_column: str,
        prov: Provenance,
        dataset: Dataset,
        *,
        monthly: bool = True,
        daily: bool = True,
    ) -> list[pl.DataFrame]:
        """The window's frames, per period from the archive or REST (`self.source`).

        `auto`: a missing file (404), one that does not verify after its retries, or one
        that verifies but holds no rows is read from REST instead (never stored from the
        archive). `archive`: either is an
        `ArchiveUnavailable` naming the file, as is a period not yet archived.
        """
        if self.source == REST_SOURCE:
            return [await rest(start_ms, end_ms)]
        forced = self.source == "archive"
        lags = {"daily_lag": timedelta(0), "monthly_lag": timedelta(0)} if forced else {}
        segments = plan_segments(start_ms, end_ms, now_ms(), monthly=monthly, daily=daily, **lags)

        async def one(seg: Segment) -> list[pl.DataFrame]:
            if seg.kind == "rest":
                if forced:
                    raise self._not_archived(prov, seg, path_of, dataset, "not archived yet")
                return [await rest(seg.start, seg.end)]
            path = path_of(seg)
            try:
                table = await self.archive.table(path, parse)
            except ArchiveUnavailable as exc:
                if forced:
                    raise
                self.archive.stats.fallbacks += 1
                log.warning("%s; reading %s..%s from REST", exc, seg.start, seg.end)
                return [await rest(seg.start, seg.end)]
            if table is None:
                if seg.kind == "monthly" and daily:
                    parts = await asyncio.gather(*(one(d) for d in days_of(seg)))
                    return [f for part in parts for f in part]
                if forced:
                    raise self._not_archived(prov, seg, path_of, dataset, "HTTP 404")
                self.archive.stats.fallbacks += 1
                return [await rest(seg.start, seg.end)]
            if table.rows.is_empty() and not forced:
                # A verified file without rows (a delisted symbol's months): what the archive
                # lacks is read from REST, as for a missing file; the file is not asked again.
                self.archive.stats.fallbacks += 1
                return [await rest(seg.start, seg.end)]
            return [table.bronze(ts_column, seg.start, seg.end, prov, dataset)]

        if len(segments) == 1:  # a day within one file (most calls): no task to schedule
            return await one(segments[0])
        parts = await asyncio.gather(*(one(seg) for seg in segments))
        return [frame for part in parts for frame in part]

    def _not_archived(
        self,
        prov: Provenance,
        seg: Segment,
        path_of: Callable[[Segment], str],
        dataset: Dataset,
        why: str,
    ) -> ArchiveUnavailable:
        path = path_of(seg if seg.period else Segment("daily", seg.start, seg.end, _day(seg)))
        name = path.rsplit("/", 1)[1]
        return ArchiveUnavailable(
            f"{dataset} of {prov.symbol} not in the archive ({name}: {why}); "
            "use source auto or rest for it",
            exchange=self.exchange,
            endpoint=path,
            symbol=prov.symbol,
        )

    async def open_interest_snapshot(self, symbol: str) -> pl.DataFrame:
        inst = await self.resolve(symbol, MarketKind.PERP)
        prov = self.provenance(inst, None, None, None)
        req = self.request("fapi", OI_SNAPSHOT, {"symbol": inst.native_symbol}, symbol)

        def decode(payload: Any) -> pl.DataFrame:
            if not isinstance(payload, dict):
                raise DecodeError("expected one JSON object")
            return objects_frame(
                [payload],
                Dataset.OPEN_INTEREST,
                prov,
                rename={"timestamp": "time", "sumOpenInterest": "openInterest"},
                constants={"source": "snapshot"},
            )

        return self.count_rows(await self.get(req, decode))


def _day(seg: Segment) -> str:
    return datetime.fromtimestamp(seg.start / 1000, UTC).date().isoformat()


def _symbols(payload: Any, endpoint: str) -> list[dict[str, Any]]:
    symbols = payload.get("symbols") if isinstance(payload, dict) else None
    if not isinstance(symbols, list):
        raise ExchangeUnavailable(
            "exchangeInfo has no symbols list", exchange=Exchange.BINANCE, endpoint=endpoint
        )
    return [s for s in symbols if isinstance(s, dict) and isinstance(s.get("symbol"), str)]


def _listing(raw: dict[str, Any], kind: MarketKind) -> Listing:
    base, quote = str(raw["baseAsset"]).upper(), str(raw.get("quoteAsset", "")).upper()
    return Listing(
        symbol=unify(base, quote),
        native_symbol=raw["symbol"],
        base=base,
        quote=quote,
        kind=kind.value,
        status=str(raw.get("status", "")),
        raw=raw,
    )


def _error_body(body: bytes) -> tuple[int | None, str]:
    """Binance error bodies are `{"code": -1121, "msg": "Invalid symbol."}`."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, body[:200].decode("utf-8", "replace").strip()
    if not isinstance(payload, dict):
        return None, str(payload)[:200]
    code = payload.get("code")
    return (code if isinstance(code, int) else None), str(payload.get("msg", ""))
