"""Coinbase Exchange public market data (`api.exchange.coinbase.com`): spot only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any, ClassVar
from urllib.parse import quote

import orjson
import polars as pl

from clients.base import BaseClient, Request, Retryable, now_ms, retry_after_seconds, to_ms
from clients.frames import Listing, concat, instruments_frame, rows_frame
from clients.pagination import CoinbaseWindows, Window, window_params
from clients.protocol import BadRequest, ExchangeUnavailable, RateLimited, UnknownSymbol
from clients.ratelimit import LimitSpec
from models.enums import Dataset, Exchange, Interval, MarketKind
from models.symbols import unify

PRODUCTS = "/products"
CANDLES = "/products/{product_id}/candles"

# Granularities the exchange accepts, in seconds; there is no 4-hour candle.
GRANULARITY: Mapping[Interval, int] = {
    Interval.M1: 60,
    Interval.M5: 300,
    Interval.M15: 900,
    Interval.H1: 3600,
    Interval.D1: 86400,
}
# Public endpoints: 10 requests/s per IP with bursts of 15. The exchange counts a request when
# it arrives, which can be up to a few hundred ms after it was sent on a loaded host or link:
# 4 requests of burst kept back absorb arrival times shuffled by up to 0.35 s (a burst of 14
# tolerated only 0.1 s and drew 429s under four concurrent backfills), 9.5/s for the rate.
PUBLIC_LIMIT = LimitSpec("bucket", 9.5, 11)


class CoinbaseClient(BaseClient):
    """Coinbase Exchange spot candles and products; it lists no perpetuals."""

    exchange: Exchange = Exchange.COINBASE
    hosts: ClassVar[Mapping[str, str]] = {"api": "https://api.exchange.coinbase.com"}
    supported_intervals: ClassVar[frozenset[Interval]] = frozenset(GRANULARITY)

    def limit_specs(self, request: Request) -> Sequence[tuple[str, LimitSpec, float]]:
        return [("public", PUBLIC_LIMIT, 1.0)]

    def classify(
        self, request: Request, status: int, headers: Mapping[str, str], body: bytes
    ) -> Any:
        if status == 200:
            return self.decode_json(request, status, body)
        message = _message(body)
        if status == 429:
            raise Retryable(
                self.error(RateLimited, message or "rate limited", request, status=status),
                retry_after=retry_after_seconds(headers),
            )
        if status >= 500:
            raise Retryable(
                self.error(ExchangeUnavailable, message or "server error", request, status=status)
            )
        cls = UnknownSymbol if status == 404 else BadRequest
        raise self.error(cls, message or "client error", request, status=status, code=message)

    # -- instruments -----------------------------------------------------------------------

    async def fetch_instruments(self, kind: MarketKind) -> pl.DataFrame:
        if kind is MarketKind.PERP:
            return self.empty(Dataset.INSTRUMENTS)
        data = await self.get(Request("api", PRODUCTS, {}))
        if not isinstance(data, list):
            raise ExchangeUnavailable(
                "products is not a list", exchange=self.exchange, endpoint=PRODUCTS
            )
        listings = [
            _listing(p)
            for p in data
            if isinstance(p, dict)
            and isinstance(p.get("id"), str)
            and p.get("base_currency")
            and p.get("quote_currency")
        ]
        return instruments_frame(self.exchange, listings, now_ms())

    # -- datasets --------------------------------------------------------------------------

    def check_interval(self, interval: Interval, endpoint: str, symbol: str) -> None:
        if interval is Interval.H4:
            raise BadRequest(
                "Coinbase has no 4h candles: 4h is resampled from 1h in silver",
                exchange=self.exchange,
                endpoint=endpoint,
                symbol=symbol,
            )
        super().check_interval(interval, endpoint, symbol)

    async def ohlcv(
        self, symbol: str, interval: Interval, start: datetime, end: datetime
    ) -> pl.DataFrame:
        self.check_interval(interval, CANDLES, symbol)
        start_ms, end_ms = to_ms(start, "start"), to_ms(end, "end")
        inst = await self.resolve(symbol, MarketKind.SPOT)
        prov = self.provenance(inst, interval.value, start_ms, end_ms)
        path = CANDLES.format(product_id=quote(inst.native_symbol, safe=""))
        step = interval.ms

        async def fetch(window: Window) -> pl.DataFrame:
            req = Request("api", path, window_params(window, step), symbol=symbol)
            return await self.get(req, lambda p: rows_frame(p, Dataset.OHLCV, prov))

        windows = CoinbaseWindows(start_ms, end_ms, granularity_ms=step).windows()
        pages = await self.gather_limited([partial(fetch, w) for w in windows])
        frame = concat(pages, self.exchange, Dataset.OHLCV)
        open_ms = pl.col("time") * 1000
        frame = (
            frame.filter((open_ms >= start_ms) & (open_ms < end_ms) & (open_ms + step <= now_ms()))
            .unique(subset=["time"], keep="first", maintain_order=True)
            .sort("time")
        )
        return self.count_rows(frame)

    async def funding(self, symbol: str, start: datetime, end: datetime) -> pl.DataFrame:
        raise self.unsupported(Dataset.FUNDING, "funding", symbol, "it lists no perpetuals")

    async def open_interest(self, symbol: str, start: datetime, end: datetime) -> pl.DataFrame:
        raise self.unsupported(Dataset.OPEN_INTEREST, "open_interest", symbol, "no perpetuals")

    async def open_interest_snapshot(self, symbol: str) -> pl.DataFrame:
        raise self.unsupported(Dataset.OPEN_INTEREST, "open_interest", symbol, "no perpetuals")


def _listing(raw: dict[str, Any]) -> Listing:
    base, quote_ = str(raw["base_currency"]).upper(), str(raw["quote_currency"]).upper()
    return Listing(
        symbol=unify(base, quote_),
        native_symbol=raw["id"],
        base=base,
        quote=quote_,
        kind=MarketKind.SPOT.value,
        status=str(raw.get("status", "")),
        raw=raw,
    )


def _message(body: bytes) -> str:
    """Coinbase error bodies are `{"message": "NotFound"}`."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace").strip()
    if isinstance(payload, dict):
        return str(payload.get("message", ""))
    return str(payload)[:200]
