"""Binance spot (`api.binance.com`) and USD-M futures (`fapi.binance.com`) market data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
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
from clients.frames import (
    DecodeError,
    Listing,
    concat,
    instruments_frame,
    objects_frame,
    rows_frame,
    window_filter,
)
from clients.pagination import AscendingCursor, Params, plan_windows
from clients.protocol import BadRequest, ExchangeUnavailable, RateLimited, UnknownSymbol
from clients.ratelimit import LimitSpec
from models.enums import OPEN_INTEREST_PERIOD, Dataset, Exchange, Interval, MarketKind
from models.symbols import unify

KLINES = "/api/v3/klines"
SPOT_INFO = "/api/v3/exchangeInfo"
FUTURES_INFO = "/fapi/v1/exchangeInfo"
FUNDING = "/fapi/v1/fundingRate"
OI_SNAPSHOT = "/fapi/v1/openInterest"
OI_HISTORY = "/futures/data/openInterestHist"
SPOT_TICKERS = "/api/v3/ticker/24hr"
FUTURES_TICKERS = "/fapi/v1/ticker/24hr"

KLINES_LIMIT = 1000
FUNDING_LIMIT = 1000
OI_HISTORY_LIMIT = 500
OI_HISTORY_DEPTH = timedelta(days=30)
# Requests starting this close to the 30-day edge are moved inside it (clock skew, latency).
OI_HISTORY_EDGE = timedelta(minutes=5)

# Request weight per endpoint (the spot and futures docs); both limits are rolling per minute.
WEIGHTS: Mapping[str, int] = {
    KLINES: 2,
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


class BinanceClient(BaseClient):
    """Spot klines and instruments; USD-M perpetual funding and open interest."""

    exchange: Exchange = Exchange.BINANCE
    hosts: ClassVar[Mapping[str, str]] = {
        "api": "https://api.binance.com",
        "fapi": "https://fapi.binance.com",
    }
    supported_intervals: ClassVar[frozenset[Interval]] = frozenset(Interval)

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
        self, symbol: str, interval: Interval, start: datetime, end: datetime
    ) -> pl.DataFrame:
        self.check_interval(interval, KLINES, symbol)
        start_ms, end_ms = to_ms(start, "start"), to_ms(end, "end")
        inst = await self.resolve(symbol, MarketKind.SPOT)
        prov = self.provenance(inst, interval.value, start_ms, end_ms)

        async def page(params: Params) -> pl.DataFrame:
            query = {"symbol": inst.native_symbol, "interval": interval.value, **params}
            req = self.request("api", KLINES, query, inst.symbol)
            return await self.get(req, lambda p: rows_frame(p, Dataset.OHLCV, prov))

        windows = plan_windows(start_ms, end_ms, step=interval.ms, per_request=KLINES_LIMIT)
        results = await self.gather_limited(
            [
                partial(
                    self.paginate,
                    AscendingCursor(w.start, w.end, limit=KLINES_LIMIT, step=interval.ms),
                    page,
                    "open_time",
                    endpoint=KLINES,
                    symbol=symbol,
                )
                for w in windows
            ]
        )
        frame = concat([p for pages in results for p in pages], self.exchange, Dataset.OHLCV)
        frame = window_filter(frame, "open_time", start_ms, end_ms)
        # The unfinished candle closes in the future.
        frame = frame.filter(pl.col("close_time") < now_ms())
        return self.count_rows(frame)

    async def funding(self, symbol: str, start: datetime, end: datetime) -> pl.DataFrame:
        start_ms, end_ms = to_ms(start, "start"), to_ms(end, "end")
        inst = await self.resolve(symbol, MarketKind.PERP)
        prov = self.provenance(inst, None, start_ms, end_ms)

        async def page(params: Params) -> pl.DataFrame:
            req = self.request("fapi", FUNDING, {"symbol": inst.native_symbol, **params}, symbol)
            return await self.get(req, lambda p: objects_frame(p, Dataset.FUNDING, prov))

        pages = await self.paginate(
            AscendingCursor(start_ms, end_ms, limit=FUNDING_LIMIT),
            page,
            "fundingTime",
            endpoint=FUNDING,
            symbol=symbol,
        )
        frame = window_filter(
            concat(pages, self.exchange, Dataset.FUNDING), "fundingTime", start_ms, end_ms
        )
        return self.count_rows(frame)

    async def open_interest(self, symbol: str, start: datetime, end: datetime) -> pl.DataFrame:
        start_ms, end_ms = to_ms(start, "start"), to_ms(end, "end")
        inst = await self.resolve(symbol, MarketKind.PERP)
        period = OPEN_INTEREST_PERIOD
        prov = self.provenance(inst, period.value, start_ms, end_ms)
        oldest = now_ms() - int((OI_HISTORY_DEPTH - OI_HISTORY_EDGE).total_seconds() * 1000)
        first = max(start_ms, oldest)
        if first >= end_ms:
            return self.empty(Dataset.OPEN_INTEREST)

        async def page(params: Params) -> pl.DataFrame:
            query = {"symbol": inst.native_symbol, "period": period.value, **params}
            req = self.request("fapi", OI_HISTORY, query, symbol)
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
                    symbol=symbol,
                )
                for w in windows
            ]
        )
        frame = concat(
            [p for pages in results for p in pages], self.exchange, Dataset.OPEN_INTEREST
        )
        return self.count_rows(window_filter(frame, "timestamp", start_ms, end_ms))

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
