"""OKX v5 public market data (`www.okx.com`): spot candles, USDT-margined swaps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

import polars as pl

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
    RowsPage,
    concat,
    instruments_frame,
    objects_frame,
    pages_frame,
    rows_frame,
    rows_page,
    window_filter,
)
from clients.pagination import DescendingCursor, Params
from clients.protocol import BadRequest, ExchangeUnavailable, RateLimited, UnknownSymbol
from clients.ratelimit import LimitSpec
from models.enums import OPEN_INTEREST_PERIOD, Dataset, Exchange, Interval, MarketKind
from models.symbols import unify

CANDLES = "/api/v5/market/history-candles"
FUNDING = "/api/v5/public/funding-rate-history"
OI_HISTORY = "/api/v5/rubik/stat/contracts/open-interest-history"
OI_SNAPSHOT = "/api/v5/public/open-interest"
INSTRUMENTS = "/api/v5/public/instruments"
TICKERS = "/api/v5/market/tickers"

CANDLES_LIMIT = 300
FUNDING_LIMIT = 400
OI_HISTORY_LIMIT = 100

# OKX bar names: hour bars are upper-case, `1Dutc` opens at 00:00 UTC (`1D` at 00:00 UTC+8).
BARS: Mapping[Interval, str] = {
    Interval.M1: "1m",
    Interval.M5: "5m",
    Interval.M15: "15m",
    Interval.H1: "1H",
    Interval.H4: "4H",
    Interval.D1: "1Dutc",
}
OI_PERIODS: Mapping[Interval, str] = {Interval.M5: "5m", Interval.H1: "1H", Interval.D1: "1Dutc"}

# Funding history covers about three months; the rubik OI history the latest 1,440 periods.
FUNDING_DEPTH = timedelta(days=90)
OI_HISTORY_DEPTH = timedelta(hours=1440)

# Per-endpoint limits (docs-v5), requests per 2 s; the key says what the limit is counted by.
_WINDOW = 2.0
# Slack after the answer (see `SlidingWindow`): the exchange counted the request before then.
_MARGIN = 0.02
LIMITS: Mapping[str, tuple[LimitSpec, str]] = {
    CANDLES: (LimitSpec("window", 20, _WINDOW, margin=_MARGIN), "ip"),
    FUNDING: (LimitSpec("window", 10, _WINDOW, margin=_MARGIN), "instId"),
    OI_HISTORY: (LimitSpec("window", 10, _WINDOW, margin=_MARGIN), "instId"),
    OI_SNAPSHOT: (LimitSpec("window", 20, _WINDOW, margin=_MARGIN), "instId"),
    INSTRUMENTS: (LimitSpec("window", 20, _WINDOW, margin=_MARGIN), "instType"),
    TICKERS: (LimitSpec("window", 20, _WINDOW, margin=_MARGIN), "ip"),
}

RATE_LIMIT_CODES = frozenset({"50011", "50061"})
TRANSIENT_CODES = frozenset({"50001", "50004", "50013", "50026"})
UNKNOWN_SYMBOL_CODES = frozenset({"51001"})


class OkxClient(BaseClient):
    """OKX spot candles (history-candles), SWAP funding and open interest, instruments."""

    exchange: Exchange = Exchange.OKX
    hosts: ClassVar[Mapping[str, str]] = {"www": "https://www.okx.com"}
    supported_intervals: ClassVar[frozenset[Interval]] = frozenset(BARS)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._list_times: dict[str, int] = {}  # native symbol -> listTime (epoch ms)

    # -- transport -------------------------------------------------------------------------

    def limit_specs(self, request: Request) -> Sequence[tuple[str, LimitSpec, float]]:
        spec, counted_by = LIMITS.get(request.path, (LimitSpec("window", 20, _WINDOW), "ip"))
        bucket = request.path
        if counted_by != "ip":
            bucket = f"{request.path}:{request.params.get(counted_by, '')}"
        return [(bucket, spec, 1.0)]

    def classify(
        self, request: Request, status: int, headers: Mapping[str, str], body: bytes
    ) -> Any:
        try:
            payload = self.decode_json(request, status, body)
        except Retryable:
            if status == 200 or status >= 500 or status == 429:
                raise
            text = body[:200].decode("utf-8", "replace")
            raise self.error(BadRequest, text or "client error", request, status=status) from None
        code, message = _envelope(payload)
        retry_after = retry_after_seconds(headers)
        if status == 429 or code in RATE_LIMIT_CODES:
            raise Retryable(
                self.error(
                    RateLimited, message or "Too Many Requests", request, status=status, code=code
                ),
                retry_after=retry_after,
            )
        if status >= 500 or code in TRANSIENT_CODES:
            raise Retryable(
                self.error(
                    ExchangeUnavailable,
                    message or "server error",
                    request,
                    status=status,
                    code=code,
                )
            )
        if code in UNKNOWN_SYMBOL_CODES:
            raise self.error(UnknownSymbol, message, request, status=status, code=code)
        if status != 200 or code != "0":
            raise self.error(
                BadRequest, message or "client error", request, status=status, code=code
            )
        data = payload.get("data")
        if not isinstance(data, list):
            raise Retryable(
                self.error(ExchangeUnavailable, "envelope without a data list", request, code=code)
            )
        return data

    # -- instruments -----------------------------------------------------------------------

    async def fetch_instruments(self, kind: MarketKind) -> pl.DataFrame:
        inst_type = "SPOT" if kind is MarketKind.SPOT else "SWAP"
        data = await self.get(Request("www", INSTRUMENTS, {"instType": inst_type}))
        listings = [
            listing
            for raw in data
            if isinstance(raw, dict) and (listing := _listing(raw, kind)) is not None
        ]
        for listing in listings:
            listed = str(listing.raw.get("listTime") or "")
            if listed.isdigit():
                self._list_times[listing.native_symbol] = int(listed)
        return instruments_frame(self.exchange, listings, now_ms())

    def native_id(self, base: str, quote: str, kind: MarketKind) -> str | None:
        """The documented instId scheme: `BASE-QUOTE` (spot), `BASE-QUOTE-SWAP` (perpetual).
        OKX drops a delisted instrument from `/public/instruments`; its id stays this."""
        return f"{base}-{quote}-SWAP" if kind is MarketKind.PERP else f"{base}-{quote}"

    async def quote_volumes(
        self, kind: MarketKind, symbols: Sequence[str] | None = None
    ) -> dict[str, float]:
        """From `/api/v5/market/tickers`: `volCcy24h` is in quote currency for SPOT; for SWAP
        it is in base currency, so it is priced at `last`."""
        natives = await self.natives(kind)
        inst_type = "SPOT" if kind is MarketKind.SPOT else "SWAP"
        data = await self.get(Request("www", TICKERS, {"instType": inst_type}))
        out: dict[str, float] = {}
        for row in data:
            if not isinstance(row, dict) or row.get("instId") not in natives:
                continue
            try:
                volume = float(row.get("volCcy24h") or 0.0)
                if kind is MarketKind.PERP:
                    volume *= float(row.get("last") or 0.0)
            except (TypeError, ValueError):
                continue
            out[natives[row["instId"]]] = volume
        wanted = set(symbols) if symbols is not None else None
        return {k: v for k, v in out.items() if wanted is None or k in wanted}

    def first_candle(self, native_symbol: str, start_ms: int, step: int) -> int:
        """`start_ms`, or the listing's first candle if later (no pages before `listTime`)."""
        listed = self._list_times.get(native_symbol)
        return start_ms if listed is None else max(start_ms, listed - listed % step)

    # -- datasets --------------------------------------------------------------------------

    def history_depth(self, dataset: Dataset) -> timedelta | None:
        if dataset is Dataset.FUNDING:
            return FUNDING_DEPTH
        if dataset is Dataset.OPEN_INTEREST:
            return OI_HISTORY_DEPTH
        return None

    async def ohlcv(
        self, symbol: str, interval: Interval, start: datetime, end: datetime
    ) -> pl.DataFrame:
        self.check_interval(interval, CANDLES, symbol)
        start_ms, end_ms = to_ms(start, "start"), to_ms(end, "end")
        inst = await self.resolve(symbol, MarketKind.SPOT)
        prov = self.provenance(inst, interval.value, start_ms, end_ms)

        async def page(params: Params) -> RowsPage:
            query = {"instId": inst.native_symbol, "bar": BARS[interval], **params}
            req = Request("www", CANDLES, query, symbol=symbol)
            return await self.get(req, lambda p: rows_page(p, Dataset.OHLCV, self.exchange))

        first = self.first_candle(inst.native_symbol, start_ms, interval.ms)
        pager = DescendingCursor(first, end_ms, limit=CANDLES_LIMIT, step=interval.ms)
        pages = await self.paginate(pager, page, "ts", endpoint=CANDLES, symbol=symbol)
        # The symbol-day's pages typed as one frame (one build, not one per page).
        frame = window_filter(pages_frame(pages, Dataset.OHLCV, prov), "ts", start_ms, end_ms)
        # confirm == "0" marks the candle still in progress.
        return self.count_rows(frame.filter(pl.col("confirm") == "1"))

    async def funding(self, symbol: str, start: datetime, end: datetime) -> pl.DataFrame:
        start_ms, end_ms = to_ms(start, "start"), to_ms(end, "end")
        inst = await self.resolve(symbol, MarketKind.PERP)
        prov = self.provenance(inst, None, start_ms, end_ms)

        async def page(params: Params) -> pl.DataFrame:
            req = Request("www", FUNDING, {"instId": inst.native_symbol, **params}, symbol=symbol)
            return await self.get(req, lambda p: objects_frame(p, Dataset.FUNDING, prov))

        pages = await self.paginate(
            DescendingCursor(start_ms, end_ms, limit=FUNDING_LIMIT),
            page,
            "fundingTime",
            endpoint=FUNDING,
            symbol=symbol,
        )
        frame = concat(pages, self.exchange, Dataset.FUNDING)
        return self.count_rows(window_filter(frame, "fundingTime", start_ms, end_ms))

    async def open_interest(self, symbol: str, start: datetime, end: datetime) -> pl.DataFrame:
        start_ms, end_ms = to_ms(start, "start"), to_ms(end, "end")
        inst = await self.resolve(symbol, MarketKind.PERP)
        period = OPEN_INTEREST_PERIOD
        prov = self.provenance(inst, period.value, start_ms, end_ms)

        async def page(params: Params) -> pl.DataFrame:
            query = {"instId": inst.native_symbol, "period": OI_PERIODS[period], **params}
            req = Request("www", OI_HISTORY, query, symbol=symbol)
            return await self.get(
                req,
                lambda p: rows_frame(
                    p, Dataset.OPEN_INTEREST, prov, arity=4, constants={"source": "history"}
                ),
            )

        pager = DescendingCursor(
            start_ms, end_ms, limit=OI_HISTORY_LIMIT, upper_key="end", lower_key="begin"
        )
        pages = await self.paginate(pager, page, "ts", endpoint=OI_HISTORY, symbol=symbol)
        frame = concat(pages, self.exchange, Dataset.OPEN_INTEREST)
        return self.count_rows(window_filter(frame, "ts", start_ms, end_ms))

    async def open_interest_snapshot(self, symbol: str) -> pl.DataFrame:
        inst = await self.resolve(symbol, MarketKind.PERP)
        prov = self.provenance(inst, None, None, None)
        req = Request(
            "www", OI_SNAPSHOT, {"instType": "SWAP", "instId": inst.native_symbol}, symbol=symbol
        )

        def decode(data: Any) -> pl.DataFrame:
            rows = [
                r for r in data if isinstance(r, dict) and r.get("instId") == inst.native_symbol
            ]
            if len(rows) != 1:
                raise DecodeError(f"expected one open-interest row for {inst.native_symbol}")
            return objects_frame(
                rows, Dataset.OPEN_INTEREST, prov, constants={"source": "snapshot"}
            )

        return self.count_rows(await self.get(req, decode))


def _envelope(payload: Any) -> tuple[str | None, str]:
    if not isinstance(payload, dict):
        return None, ""
    code = payload.get("code")
    return (str(code) if code is not None else None), str(payload.get("msg", ""))


def _listing(raw: dict[str, Any], kind: MarketKind) -> Listing | None:
    """Unified identity of a SPOT pair or a linear (USDT/USDC-settled) SWAP; else None."""
    inst_id = raw.get("instId")
    if not isinstance(inst_id, str):
        return None
    parts = inst_id.split("-")
    if kind is MarketKind.SPOT:
        base = raw.get("baseCcy") or (parts[0] if len(parts) == 2 else "")
        quote = raw.get("quoteCcy") or (parts[1] if len(parts) == 2 else "")
    else:
        if raw.get("ctType") != "linear" or not inst_id.endswith("-SWAP"):
            return None
        underlying = str(raw.get("uly") or "-".join(parts[:2])).split("-")
        base = raw.get("baseCcy") or raw.get("ctValCcy") or underlying[0]
        quote = raw.get("quoteCcy") or raw.get("settleCcy") or underlying[-1]
    if not base or not quote:
        return None
    base, quote = str(base).upper(), str(quote).upper()
    return Listing(
        symbol=unify(base, quote),
        native_symbol=inst_id,
        base=base,
        quote=quote,
        kind=kind.value,
        status=str(raw.get("state", "")),
        raw=raw,
    )
