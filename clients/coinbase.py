"""Coinbase Exchange public market data (`api.exchange.coinbase.com`): spot only."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any, ClassVar
from urllib.parse import quote

import orjson
import polars as pl

from clients.base import BaseClient, Request, Retryable, now_ms, retry_after_seconds, to_ms
from clients.frames import (
    Listing,
    RowsPage,
    instruments_frame,
    pages_frame,
    rows_page,
    window_filter,
)
from clients.pagination import CoinbaseWindows, Window, window_params
from clients.protocol import BadRequest, ExchangeUnavailable, RateLimited, UnknownSymbol
from clients.ratelimit import LimitSpec
from models.enums import Dataset, Exchange, Interval, MarketKind
from models.symbols import unify

log = logging.getLogger(__name__)

PRODUCTS = "/products"
CANDLES = "/products/{product_id}/candles"
STATS = "/products/{product_id}/stats"

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

    def decode_json(self, request: Request, status: int, body: bytes) -> Any:
        """JSON of an answer; `NaN`, `Infinity` and out-of-range numbers (which orjson
        refuses) read as floats, so a candle holding one is quarantined in silver instead of
        its whole page failing. A body that is not JSON at all is retried."""
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
        try:
            return json.loads(body)
        except ValueError:
            return super().decode_json(request, status, body)

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
        products = [p for p in data if isinstance(p, dict) and isinstance(p.get("id"), str)]
        listings = [x for x in map(_listing, products) if x is not None]
        return instruments_frame(self.exchange, resolve_collisions(listings), now_ms())

    def native_id(self, base: str, quote: str, kind: MarketKind) -> str | None:
        """Product ids are `BASE-QUOTE`; there are no perpetuals."""
        return f"{base}-{quote}" if kind is MarketKind.SPOT else None

    async def quote_volumes(
        self, kind: MarketKind, symbols: Sequence[str] | None = None
    ) -> dict[str, float]:
        """`/products/{id}/stats` per product (`volume` in base units, priced at `last`): one
        request per symbol, so pass `symbols` (default: every tradable product)."""
        if kind is MarketKind.PERP:
            return {}
        frame = await self.instruments(kind)
        tradable_ids = {
            row["symbol"]: row["native_symbol"]
            for row in frame.iter_rows(named=True)
            if tradable(orjson.loads(row["raw"]))
        }
        wanted = [s for s in (symbols or list(tradable_ids)) if s in tradable_ids]

        async def one(symbol: str) -> tuple[str, float]:
            product_id = quote(tradable_ids[symbol], safe="")
            stats = await self.get(Request("api", STATS.format(product_id=product_id), {}, symbol))
            try:
                return symbol, float(stats.get("volume") or 0.0) * float(stats.get("last") or 0.0)
            except (AttributeError, TypeError, ValueError):
                return symbol, 0.0

        return dict(await self.gather_limited([partial(one, s) for s in wanted]))

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

        async def fetch(window: Window) -> RowsPage:
            req = Request("api", path, window_params(window, step), symbol=symbol)
            return await self.get(req, lambda p: rows_page(p, Dataset.OHLCV, self.exchange))

        windows = CoinbaseWindows(start_ms, end_ms, granularity_ms=step).windows()
        pages = await self.gather_limited([partial(fetch, w) for w in windows])
        # The symbol-day's pages typed as one frame (one build, not one per page).
        frame = pages_frame(pages, Dataset.OHLCV, prov)
        # Open times (s -> ms) in [start, end) of closed candles (open + step <= now).
        # Overlapping windows repeat rows: an exact repeat is kept once; copies of a candle
        # that differ are all kept for silver to quarantine (see `frames.window_filter`).
        closed_before = now_ms() - step + 1
        frame = window_filter(frame, "time", start_ms, min(end_ms, closed_before), scale=1000)
        return self.count_rows(frame)

    async def funding(self, symbol: str, start: datetime, end: datetime) -> pl.DataFrame:
        raise self.unsupported(Dataset.FUNDING, "funding", symbol, "it lists no perpetuals")

    async def open_interest(self, symbol: str, start: datetime, end: datetime) -> pl.DataFrame:
        raise self.unsupported(Dataset.OPEN_INTEREST, "open_interest", symbol, "no perpetuals")

    async def open_interest_snapshot(self, symbol: str) -> pl.DataFrame:
        raise self.unsupported(Dataset.OPEN_INTEREST, "open_interest", symbol, "no perpetuals")


def _listing(raw: dict[str, Any]) -> Listing | None:
    """A product's identity, named by its id `BASE-QUOTE` (the exchange's own key).

    The id, not `base_currency` + `quote_currency`, names the product: the cancel-only auction
    book `BTCAUCTION-USD` also carries BTC and USD, and is listed as BTCAUCTIONUSD (base
    BTCAUCTION), as public clients split the id. An id without exactly one dash falls back to
    the currency fields; a product with neither is skipped.
    """
    parts = str(raw["id"]).upper().split("-")
    if len(parts) == 2 and all(parts):
        base, quote_ = parts
    else:
        base = str(raw.get("base_currency") or "").upper()
        quote_ = str(raw.get("quote_currency") or "").upper()
    if not base or not quote_:
        return None
    return Listing(
        symbol=unify(base, quote_),
        native_symbol=raw["id"],
        base=base,
        quote=quote_,
        kind=MarketKind.SPOT.value,
        status=str(raw.get("status", "")),
        raw=raw,
    )


def tradable(raw: Mapping[str, Any]) -> bool:
    """Whether a product is an open book: `online`, and neither trading-disabled, cancel-only
    nor in auction mode."""
    return raw.get("status") == "online" and not any(
        raw.get(flag) for flag in ("trading_disabled", "cancel_only", "auction_mode")
    )


def _rank(listing: Listing) -> tuple[bool, bool, bool, str, bytes]:
    """Collision order, best first: the book whose id is `{base_currency}-{quote_currency}`,
    then a tradable one (`tradable`), then status `online`, then the smaller id (then the
    product's JSON, so that even a repeated id is decided whatever the list order)."""
    raw = listing.raw
    pair = f"{raw.get('base_currency', '')}-{raw.get('quote_currency', '')}".upper()
    own = str(raw["id"]).upper() == pair
    return (
        not own,
        not tradable(raw),
        raw.get("status") != "online",
        listing.native_symbol,
        orjson.dumps(raw, option=orjson.OPT_SORT_KEYS),
    )


def resolve_collisions(listings: Sequence[Listing]) -> list[Listing]:
    """One listing per unified symbol, whatever the list order.

    Rule: of the products that name the same symbol, the first by `_rank` keeps it: the book
    whose id is its own `BASE-QUOTE` beats any other, a tradable book beats one that is
    auction-mode, trading-disabled, cancel-only or not `online` (e.g. `delisted`), and the
    smaller id breaks a tie. The others are left out, each logged with the one that won.
    """
    best: dict[str, Listing] = {}
    for listing in sorted(listings, key=_rank):
        kept = best.setdefault(listing.symbol, listing)
        if kept is not listing:
            log.warning(
                "coinbase products %s (%s) and %s (%s) both name %s: %s kept",
                kept.native_symbol,
                kept.status,
                listing.native_symbol,
                listing.status,
                listing.symbol,
                kept.native_symbol,
            )
    return [x for x in listings if best[x.symbol] is x]


def _message(body: bytes) -> str:
    """Coinbase error bodies are `{"message": "NotFound"}`."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace").strip()
    if isinstance(payload, dict):
        return str(payload.get("message", ""))
    return str(payload)[:200]
