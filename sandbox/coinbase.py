"""Coinbase Exchange public endpoints: products, currencies, product candles, time.

Candles: ``granularity`` in {60, 300, 900, 3600, 21600, 86400} (default 60 when absent); ``start``
and ``end`` ISO 8601 (or unix seconds); when either is missing both are ignored and the latest
300 buckets up to now are returned. More than 300 buckets ((end - start) / granularity > 300)
is a 400. Rows ``[time, low, high, open, close, volume]`` (numbers), newest first, covering the
buckets from the one containing ``start`` up to ``end`` inclusive (the oldest 300); buckets
without trades are omitted.

Products: delisted products stay in the list with status ``delisted`` and ``trading_disabled``
(their candles are served up to the delisting); ``/products/{id}/stats`` gives the rolling 24 h
figures (``volume`` in base units). Besides every listing's book ``BASE-QUOTE``, ``/products``
holds books that share a listing's base and quote, as the real list does (``BTCAUCTION-USD``
beside ``BTC-USD``): the cancel-only ``BTCAUCTION-USD`` (the recorded real product), an
auction-mode, trading-disabled ``ETHAUCTION-USD`` and a delisted ``XRPAUCTION-USD``. They have
no trades, so their candles are empty. The list comes in an order drawn from the seed, so a
collision product precedes its book under some seeds and follows it under others.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import partial

from aiohttp import web

from sandbox import catalog, market
from sandbox.common import ApiError, floats, json_response
from sandbox.listing import SPOT, Listing
from sandbox.market import Bar, Candles, stable_key
from sandbox.pages import RowFormat, page
from sandbox.state import STATE, SandboxState

GRANULARITIES = (60, 300, 900, 3600, 21600, 86400)
MAX_BUCKETS = 300
_DIGITS = re.compile(r"^[0-9]{1,12}(\.[0-9]+)?$")

NOT_FOUND = ApiError(404, {"message": "NotFound"})
UNAVAILABLE = ApiError(503, {"message": "Service Unavailable"})
RATE_LIMIT_BODY = {"message": "Public rate limit exceeded"}
_NAMES = {"BTC": "Bitcoin", "ETH": "Ethereum", "SOL": "Solana", "XRP": "XRP", "DOGE": "Dogecoin",
          "USD": "United States Dollar", "USDT": "Tether"}  # fmt: skip


# Books that share a listing's base and quote: id -> (the listing's book, fields that differ).
SHADOWS: dict[str, tuple[str, dict[str, object]]] = {
    "BTCAUCTION-USD": ("BTC-USD", {"cancel_only": True}),
    "ETHAUCTION-USD": ("ETH-USD", {"auction_mode": True, "trading_disabled": True}),
    "XRPAUCTION-USD": (
        "XRP-USD",
        {"status": "delisted", "trading_disabled": True, "status_message": "delisted"},
    ),
}


def bad_request(message: str) -> ApiError:
    return ApiError(400, {"message": message})


def product(state: SandboxState, product_id: str) -> Listing:
    listing = catalog.by_native("coinbase", SPOT, product_id.upper())
    if listing is None or listing.listed_ms > state.now_ms():
        raise NOT_FOUND
    state.check_fail("coinbase", listing.symbol, UNAVAILABLE)
    return listing


def shadow(state: SandboxState, product_id: str) -> tuple[Listing, dict[str, object]] | None:
    """The listing a collision product shares its base and quote with, and its body."""
    found = SHADOWS.get(product_id.upper())
    if found is None:
        return None
    book, fields = found
    listing = product(state, book)
    return listing, shadow_body(product_id.upper(), listing, fields)


def shadow_body(product_id: str, listing: Listing, fields: dict[str, object]) -> dict[str, object]:
    name = product_id.replace("-", "/")
    return {**product_body(listing), "id": product_id, "display_name": name, **fields}


def product_status(listing: Listing, now_ms: int) -> str:
    """`delisted` once delisted (the product stays listed), else its status or `online`."""
    if listing.delisted_at(now_ms):
        return "delisted"
    return listing.status or "online"


def product_body(listing: Listing, now_ms: int = 0) -> dict[str, object]:
    status = product_status(listing, now_ms)
    return {
        "id": listing.native,
        "base_currency": listing.base,
        "quote_currency": listing.quote,
        "quote_increment": listing.tick,
        "base_increment": listing.lot,
        "display_name": f"{listing.base}/{listing.quote}",
        "min_market_funds": "1",
        "margin_enabled": False,
        "post_only": False,
        "limit_only": False,
        "cancel_only": False,
        "status": status,
        "status_message": "" if status == "online" else status,
        "trading_disabled": status != "online",
        "fx_stablecoin": False,
        "max_slippage_percentage": "0.02000000",
        "auction_mode": False,
        "high_bid_limit_percentage": "",
    }


def parse_time(value: str, name: str) -> int:
    """ISO 8601 (or unix seconds) to epoch milliseconds."""
    text = value.strip()
    try:
        if _DIGITS.match(text):
            return int(float(text) * 1000)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"Invalid {name}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


async def products(request: web.Request) -> web.Response:
    state = request.app[STATE]
    now = state.now_ms()
    listed = {item.native: item for item in catalog.listings("coinbase", SPOT)}
    bodies = [product_body(item, now) for item in listed.values() if item.listed_ms <= now]
    bodies += [
        shadow_body(product_id, listed[book], fields)
        for product_id, (book, fields) in SHADOWS.items()
        if listed[book].listed_ms <= now
    ]
    bodies.sort(key=lambda body: stable_key(state.seed, "products", body["id"]))
    return json_response(bodies)


async def single_product(request: web.Request) -> web.Response:
    state = request.app[STATE]
    product_id = request.match_info["product_id"]
    found = shadow(state, product_id)
    if found:
        return json_response(found[1])
    return json_response(product_body(product(state, product_id), state.now_ms()))


async def product_stats(request: web.Request) -> web.Response:
    """`/products/{id}/stats`: rolling 24 h open, high, low, last and `volume` (base units),
    plus `volume_30day`; numbers as strings."""
    state = request.app[STATE]
    product_id = request.match_info["product_id"]
    found = shadow(state, product_id)
    listing = found[0] if found else product(state, product_id)
    now = state.now_ms()
    trading = found is None and product_status(listing, now) == "online"
    t = market.turnover(state.seed, listing, now, trading=trading)
    td = listing.tick_decimals
    return json_response(
        {
            "open": f"{t.open:.{td}f}",
            "high": f"{max(t.open, t.last):.{td}f}",
            "low": f"{min(t.open, t.last):.{td}f}",
            "last": f"{t.last:.{td}f}",
            "volume": f"{t.volume:.8f}",
            "volume_30day": f"{t.volume * 30:.8f}",
        }
    )


async def currencies(request: web.Request) -> web.Response:
    codes = sorted({item.base for item in catalog.listings("coinbase", SPOT)} | {"USD", "USDT"})
    rows: list[dict[str, object]] = [
        {"id": code, "name": _NAMES.get(code, code), "min_size": "0.00000001", "status": "online",
         "message": "", "max_precision": "0.01" if code == "USD" else "0.00000001",
         "convertible_to": [], "details": {"type": "fiat" if code == "USD" else "crypto"}}
        for code in codes
    ]  # fmt: skip
    return json_response(rows)


async def server_time(request: web.Request) -> web.Response:
    now = request.app[STATE].now_ms()
    iso = datetime.fromtimestamp(now / 1000, UTC).isoformat(timespec="milliseconds")
    return json_response({"iso": iso.replace("+00:00", "Z"), "epoch": now / 1000})


async def candles(request: web.Request) -> web.Response:
    state = request.app[STATE]
    q = request.query
    product_id = request.match_info["product_id"]
    found = shadow(state, product_id)
    empty = found is not None  # a collision product's book has no trades: no candles
    listing = found[0] if found else product(state, product_id)
    raw = q.get("granularity") or "60"
    if not raw.isdigit() or int(raw) not in GRANULARITIES:
        raise bad_request("Unsupported granularity")
    bar = Bar(int(raw) * 1000)
    now = state.now_ms()
    keep = partial(state.keep, "coinbase", listing.symbol)
    if q.get("start") and q.get("end"):
        start, end = parse_time(q["start"], "start"), parse_time(q["end"], "end")
        if end < start:
            raise bad_request("start must be before end")
        if (end - start) / bar.length_ms > MAX_BUCKETS:
            raise bad_request(
                "granularity too small for the requested time range. Count of aggregations "
                "requested exceeds 300"
            )
        first, upper, last = bar.floor(start), end + 1, False
    else:
        first = bar.floor(now) - (MAX_BUCKETS - 1) * bar.length_ms
        upper, last = now + 1, True
    if empty:
        return json_response([])
    rows = page(
        state.seed, listing, bar, CANDLE_ROWS, first, upper, MAX_BUCKETS, now, last=last, keep=keep
    )
    return json_response(rows)


def candle_rows(listing: Listing, bar: Bar, c: Candles, now_ms: int) -> list[tuple[float, ...]]:
    """Rows ``[time, low, high, open, close, volume]``, oldest first (served newest first)."""
    td = listing.tick_decimals
    lm, ld = listing.lot_parts
    low, high, op, close = (floats(getattr(c, f), td) for f in ("low", "high", "open", "close"))
    volume = floats(c.volume * lm, ld)
    return list(zip((c.ts // 1000).tolist(), low, high, op, close, volume, strict=True))


CANDLE_ROWS = RowFormat(candle_rows, newest_first=True)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/products", products),
        web.get("/products/{product_id}", single_product),
        web.get("/products/{product_id}/candles", candles),
        web.get("/products/{product_id}/stats", product_stats),
        web.get("/currencies", currencies),
        web.get("/time", server_time),
    ]
