"""Binance spot (`/api/v3`) and USD-M futures (`/fapi/v1`, `/futures/data`) public endpoints.

Behaviour follows the reference notes: klines ascending with both time bounds inclusive on the
open time (microsecond inputs accepted); ``limit`` above the maximum is clamped; unknown
parameters give -1104; intervals ``1m`` .. ``1M`` and ``timeZone`` are served (the sub-minute
``1s`` interval is not: -1120); funding-rate history ascending with inclusive bounds; open-interest
history only for the latest 30 days (a ``startTime``/``endTime`` older than that is refused with
-1130 "parameter 'startTime' is invalid.", as ccxt maintainers report the live endpoint does).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import partial

import numpy as np
from aiohttp import web

from sandbox import catalog, market
from sandbox.common import ApiError, fixed, float_text, json_response
from sandbox.listing import DAY_MS, HOUR_MS, PERP, SPOT, Listing, utc_ms
from sandbox.market import MINUTE_MS, Bar
from sandbox.pages import RowFormat, page
from sandbox.state import STATE, SandboxState

FAR_MS = 2**62
_NUMBER = re.compile(r"^[0-9]{1,20}$")
_SYMBOL = re.compile(r"^[A-Z0-9\-_.]{1,20}$")
_TIMEZONE = re.compile(r"^([+-]?)(\d{1,2})(?::(\d{2}))?$")
OI_HISTORY_MS = 30 * DAY_MS

BINANCE_BARS: dict[str, Bar] = {
    "1m": Bar(MINUTE_MS),
    "3m": Bar(3 * MINUTE_MS),
    "5m": Bar(5 * MINUTE_MS),
    "15m": Bar(15 * MINUTE_MS),
    "30m": Bar(30 * MINUTE_MS),
    "1h": Bar(HOUR_MS),
    "2h": Bar(2 * HOUR_MS),
    "4h": Bar(4 * HOUR_MS),
    "6h": Bar(6 * HOUR_MS),
    "8h": Bar(8 * HOUR_MS),
    "12h": Bar(12 * HOUR_MS),
    "1d": Bar(DAY_MS),
    "3d": Bar(3 * DAY_MS),
    "1w": Bar(7 * DAY_MS, 4 * DAY_MS),  # weeks open Monday 00:00 UTC
    "1M": Bar(31 * DAY_MS, 0, months=1),
}
OI_PERIODS = ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")

SPOT_WEIGHT_LIMIT = 6000
FUTURES_WEIGHT_LIMIT = 2400


# --------------------------------------------------------------------------- errors


def error(code: int, msg: str, status: int = 400) -> ApiError:
    return ApiError(status, {"code": code, "msg": msg})


def missing(name: str) -> ApiError:
    return error(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def illegal(name: str, legal: str = "^[0-9]{1,20}$") -> ApiError:
    return error(
        -1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'."
    )


def invalid(name: str) -> ApiError:
    return error(-1130, f"Data sent for parameter '{name}' is not valid.")


UNAVAILABLE = error(
    -1001, "Internal error; unable to process your request. Please try again.", status=503
)


def rate_limit_body(limit: int) -> dict[str, object]:
    return {
        "code": -1003,
        "msg": f"Too much request weight used; current limit is {limit} request weight per "
        "1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
    }


def ban_body(until_ms: int) -> dict[str, object]:
    return {
        "code": -1003,
        "msg": f"Way too much request weight used; IP banned until {until_ms}. Please use "
        "WebSocket Streams for live updates to avoid bans.",
    }


# --------------------------------------------------------------------------- parameters


def check_params(query: Mapping[str, str], allowed: set[str]) -> None:
    sent = len(query)
    read = sum(1 for name in query if name in allowed)
    if read != sent:
        raise error(
            -1104,
            f"Not all sent parameters were read; read '{read}' parameter(s) but was sent '{sent}'.",
        )


def required(query: Mapping[str, str], name: str) -> str:
    value = query.get(name, "")
    if not value:
        raise missing(name)
    return value


def integer(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    if not _NUMBER.match(value):
        raise illegal(name)
    return int(value)


def timestamp(query: Mapping[str, str], name: str) -> int | None:
    value = integer(query, name)
    if value is not None and value >= 10**14:  # microseconds
        value //= 1000
    return value


def limit_param(query: Mapping[str, str], default: int, maximum: int) -> int:
    value = integer(query, "limit")
    if value is None:
        return default
    if value <= 0:
        raise invalid("limit")
    return min(value, maximum)


def symbol_listing(state: SandboxState, kind: str, value: str) -> Listing:
    if not _SYMBOL.match(value):
        raise illegal("symbol", "^[A-Z0-9-_.]{1,20}$")
    listing = catalog.by_native("binance", kind, value)
    if listing is None:
        raise error(-1121, "Invalid symbol.")
    state.check_fail("binance", listing.symbol, UNAVAILABLE)
    return listing


def time_zone_ms(value: str | None) -> int:
    if value is None or value in ("", "0"):
        return 0
    match = _TIMEZONE.match(value)
    if not match:
        raise invalid("timeZone")
    sign = -1 if match.group(1) == "-" else 1
    total = (int(match.group(2)) * 60 + int(match.group(3) or 0)) * MINUTE_MS
    if not -12 * HOUR_MS <= sign * total <= 14 * HOUR_MS:
        raise invalid("timeZone")
    return sign * total


def bar_for(interval: str, tz_ms: int) -> Bar:
    bar = BINANCE_BARS.get(interval)
    if bar is None:
        raise error(-1120, "Invalid interval.")
    if not tz_ms:
        return bar
    if bar.months:
        return Bar(bar.length_ms, tz_ms, bar.months)
    return Bar(bar.length_ms, bar.offset_ms - tz_ms)


def futures_klines_weight(limit: int) -> int:
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    if limit <= 1000:
        return 5
    return 10


def weight(path: str, query: Mapping[str, str]) -> int:
    """Request weight of a Binance request, as the exchange accounts it."""
    if path == "/fapi/v1/klines":
        raw = query.get("limit", "")
        limit = int(raw) if _NUMBER.match(raw) else 500
        return futures_klines_weight(min(max(limit, 1), 1500))
    if path == "/fapi/v1/premiumIndex":
        return 1 if query.get("symbol") else 10
    if path == "/api/v3/ticker/24hr":  # 2 for one symbol, 80 for all (symbols: by count)
        if query.get("symbol"):
            return 2
        count = query.get("symbols", "").count(",") + 1 if query.get("symbols") else 0
        return 80 if count == 0 or count > 100 else 2 if count <= 20 else 40
    if path == "/fapi/v1/ticker/24hr":
        return 1 if query.get("symbol") else 40
    return _WEIGHTS.get(path, 1)


_WEIGHTS = {
    "/api/v3/klines": 2,
    "/api/v3/exchangeInfo": 20,
    "/fapi/v1/exchangeInfo": 1,
    "/fapi/v1/fundingRate": 0,
    "/fapi/v1/fundingInfo": 0,
    "/futures/data/openInterestHist": 0,
}
FUNDING_PATHS = ("/fapi/v1/fundingRate", "/fapi/v1/fundingInfo")


def is_futures(path: str) -> bool:
    return path.startswith(("/fapi/", "/futures/"))


# --------------------------------------------------------------------------- klines


def kline_rows(
    listing: Listing, bar: Bar, c: market.Candles, futures: bool
) -> list[tuple[object, ...]]:
    td = listing.tick_decimals
    lm, ld = listing.lot_parts
    price_out, qty_out, quote_out = (td, ld, 4) if futures else (8, 8, 8)
    o, h, lo, cl = (fixed(getattr(c, f), td, price_out) for f in ("open", "high", "low", "close"))
    vol = fixed(c.volume * lm, ld, qty_out)
    quote = fixed(c.quote_volume * lm, td + ld, quote_out)
    taker = fixed(c.taker_base * lm, ld, qty_out)
    taker_quote = fixed(c.taker_quote * lm, td + ld, quote_out)
    close_times = (bar.close_times(c.ts) - 1).tolist()
    ignore = ["0"] * len(c)
    columns = (c.ts.tolist(), o, h, lo, cl, vol, close_times, quote, c.trades.tolist(), taker,
               taker_quote, ignore)  # fmt: skip
    return list(zip(*columns, strict=True))


SPOT_ROWS = RowFormat(lambda listing, bar, c, now_ms: kline_rows(listing, bar, c, futures=False))
FUTURES_ROWS = RowFormat(lambda listing, bar, c, now_ms: kline_rows(listing, bar, c, futures=True))


def _klines(futures: bool) -> Callable[[web.Request], object]:
    kind = PERP if futures else SPOT
    fmt = FUTURES_ROWS if futures else SPOT_ROWS
    maximum = 1500 if futures else 1000
    allowed = {"symbol", "interval", "startTime", "endTime", "limit"}
    if not futures:
        allowed.add("timeZone")

    async def handler(request: web.Request) -> web.Response:
        state = request.app[STATE]
        q = request.query
        check_params(q, allowed)
        symbol = required(q, "symbol")
        interval = required(q, "interval")
        start, end = timestamp(q, "startTime"), timestamp(q, "endTime")
        limit = limit_param(q, 500, maximum)
        listing = symbol_listing(state, kind, symbol)
        bar = bar_for(interval, time_zone_ms(q.get("timeZone")))
        if start is not None and end is not None and start > end:
            raise error(-1023, "Start time is greater than end time.")
        upper = FAR_MS if end is None else end + 1
        first, last = (0, True) if start is None else (start, False)
        now = state.now_ms()
        keep = partial(state.keep, "binance", listing.symbol)
        rows = page(state.seed, listing, bar, fmt, first, upper, limit, now, last=last, keep=keep)
        return json_response(rows)

    return handler


# --------------------------------------------------------------------------- instruments


def _filters(listing: Listing) -> list[dict[str, object]]:
    return [
        {"filterType": "PRICE_FILTER", "minPrice": listing.tick, "maxPrice": "1000000.00",
         "tickSize": listing.tick},
        {"filterType": "LOT_SIZE", "minQty": listing.lot, "maxQty": "9000000",
         "stepSize": listing.lot},
        {"filterType": "MIN_NOTIONAL" if listing.kind == PERP else "NOTIONAL",
         "minNotional": "5", "notional": "5"},
    ]  # fmt: skip


def spot_status(listing: Listing, now_ms: int) -> str:
    """`BREAK` once delisted (Binance keeps the symbol and its klines), else its status."""
    if listing.delisted_at(now_ms):
        return "BREAK"
    return listing.status or "TRADING"


def futures_status(listing: Listing, now_ms: int) -> str:
    """`SETTLING` once a perpetual is delisted, else `TRADING`."""
    return "SETTLING" if listing.delisted_at(now_ms) else listing.status or "TRADING"


def spot_symbol(listing: Listing, now_ms: int = 0) -> dict[str, object]:
    return {
        "symbol": listing.native,
        "status": spot_status(listing, now_ms),
        "baseAsset": listing.base,
        "baseAssetPrecision": 8,
        "quoteAsset": listing.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": True,
        "filters": _filters(listing),
        "permissions": [],
        "permissionSets": [["SPOT", "MARGIN"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


DELIVERY_NOTICE_MS = 3 * DAY_MS  # a delivering perpetual settles this long after "now"


def futures_symbol(listing: Listing, now_ms: int = 0) -> dict[str, object]:
    delivery = 4133404800000
    if listing.delivering:
        delivery = (now_ms + DELIVERY_NOTICE_MS) // HOUR_MS * HOUR_MS
    elif listing.delisted_ms is not None:
        delivery = listing.delisted_ms
    return {
        "symbol": listing.native,
        "pair": listing.native,
        "contractType": "PERPETUAL_DELIVERING" if listing.delivering else "PERPETUAL",
        "deliveryDate": delivery,
        "onboardDate": listing.listed_ms,
        "status": futures_status(listing, now_ms),
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": listing.base,
        "quoteAsset": listing.quote,
        "marginAsset": listing.quote,
        "pricePrecision": listing.tick_decimals,
        "quantityPrecision": listing.lot_decimals,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "filters": _filters(listing),
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


async def spot_exchange_info(request: web.Request) -> web.Response:
    state = request.app[STATE]
    q = request.query
    check_params(q, {"symbol", "symbols", "permissions", "showPermissionSets", "symbolStatus"})
    now = state.now_ms()
    chosen = [item for item in catalog.listings("binance", SPOT) if item.listed_ms <= now]
    if q.get("symbolStatus") and (q.get("symbol") or q.get("symbols")):
        raise error(-1128, "Combination of optional parameters invalid.")
    if q.get("symbolStatus"):
        status = q["symbolStatus"]
        if status not in ("TRADING", "HALT", "BREAK"):
            raise invalid("symbolStatus")
        chosen = [item for item in chosen if spot_status(item, now) == status]
    names: list[str] = []
    if q.get("symbol"):
        names = [q["symbol"]]
    elif q.get("symbols"):
        names = _json_names(q["symbols"])
    if names:
        chosen = [symbol_listing(state, SPOT, name) for name in names]
    body = {
        "timezone": "UTC",
        "serverTime": now,
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
             "limit": SPOT_WEIGHT_LIMIT},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5,
             "limit": 61000},
        ],
        "exchangeFilters": [],
        "symbols": [spot_symbol(item, now) for item in chosen],
    }  # fmt: skip
    return json_response(body)


def _json_names(text: str) -> list[str]:
    match = re.fullmatch(r'\[\s*("[A-Z0-9\-_.]{1,20}"\s*(,\s*"[A-Z0-9\-_.]{1,20}"\s*)*)\]', text)
    if not match:
        raise illegal("symbols", '^\\["[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}\\]$')
    return re.findall(r'"([^"]+)"', text)


async def futures_exchange_info(request: web.Request) -> web.Response:
    state = request.app[STATE]
    check_params(request.query, set())
    body = {
        "timezone": "UTC",
        "serverTime": state.now_ms(),
        "futuresType": "U_MARGINED",
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
             "limit": FUTURES_WEIGHT_LIMIT},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
        ],
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": [
            futures_symbol(item, state.now_ms())
            for item in catalog.listings("binance", PERP)
            if item.listed_ms <= state.now_ms()
        ],
    }  # fmt: skip
    return json_response(body)


# --------------------------------------------------------------------------- funding


def _window(times: np.ndarray, start: int | None, end: int | None, limit: int) -> np.ndarray:
    """Binance selection over ascending times: first ``limit`` from start, else last ``limit``."""
    lo = 0 if start is None else int(np.searchsorted(times, start, "left"))
    hi = len(times) if end is None else int(np.searchsorted(times, end, "right"))
    if start is not None:
        return times[lo : min(hi, lo + limit)]
    return times[max(lo, hi - limit) : hi]


def funding_rows(
    state: SandboxState, listing: Listing, start: int | None, end: int | None, limit: int
) -> list[dict[str, object]]:
    now = state.now_ms()
    upper = now if end is None else min(end, now)
    lo = listing.listed_ms if start is None else max(start, listing.listed_ms)
    if start is None:  # the most recent rows: a bounded look-back is enough
        lo = max(lo, upper - (limit + 1) * 8 * HOUR_MS)
    times, _ = market.funding_times(listing, lo, upper + 1)
    times = _window(times, start, end, limit)
    times = times[state.keep("binance", listing.symbol, times)]
    if len(times) == 0:
        return []
    f = market.funding(state.seed, listing, int(times[0]), int(times[-1]) + 1)
    keep = np.isin(f.time, times)
    rows = []
    for t, rate, mark in zip(
        f.time[keep].tolist(), f.rate[keep].tolist(), f.mark[keep].tolist(), strict=True
    ):
        rows.append(
            {
                "symbol": listing.native,
                "fundingTime": t,
                "fundingRate": float_text(rate, 8),
                "markPrice": "" if t < MARK_PRICE_SINCE_MS else float_text(mark, 8),
            }
        )
    return rows


MARK_PRICE_SINCE_MS = utc_ms("2021-01-01")  # older rows carry markPrice ""


async def funding_rate(request: web.Request) -> web.Response:
    state = request.app[STATE]
    q = request.query
    check_params(q, {"symbol", "startTime", "endTime", "limit"})
    start, end = timestamp(q, "startTime"), timestamp(q, "endTime")
    limit = limit_param(q, 100, 1000)
    if start is not None and end is not None and start > end:
        raise error(-1023, "Start time is greater than end time.")
    if q.get("symbol"):
        chosen = [symbol_listing(state, PERP, q["symbol"])]
    else:
        chosen = catalog.listings("binance", PERP)
    rows: list[dict[str, object]] = []
    for listing in chosen:
        rows.extend(funding_rows(state, listing, start, end, limit))
    if len(chosen) > 1:
        rows.sort(key=lambda row: (row["fundingTime"], row["symbol"]))  # type: ignore[return-value]
        rows = rows[:limit] if start is not None else rows[-limit:]
    return json_response(rows)


async def funding_info(request: web.Request) -> web.Response:
    state = request.app[STATE]
    check_params(request.query, set())
    now = state.now_ms()
    rows = [
        {
            "symbol": item.native,
            "adjustedFundingRateCap": "0.02000000",
            "adjustedFundingRateFloor": "-0.02000000",
            "fundingIntervalHours": item.funding_hours_at(now),
            "disclaimer": False,
        }
        for item in catalog.listings("binance", PERP)
        if item.funding_hours_at(now) != 8
    ]
    return json_response(rows)


async def premium_index(request: web.Request) -> web.Response:
    state = request.app[STATE]
    q = request.query
    check_params(q, {"symbol"})
    now = state.now_ms()
    chosen = (
        [symbol_listing(state, PERP, q["symbol"])]
        if q.get("symbol")
        else catalog.listings("binance", PERP)
    )
    rows = []
    for item in chosen:
        hours = item.funding_hours_at(now)
        step = hours * HOUR_MS
        last = market.funding(state.seed, item, now - step, now + 1)
        mark = float(market.price(state.seed, item, np.array([now // MINUTE_MS]))[0])
        rows.append(
            {
                "symbol": item.native,
                "markPrice": float_text(mark, 8),
                "indexPrice": float_text(mark * 0.9998, 8),
                "estimatedSettlePrice": float_text(mark * 0.9999, 8),
                "lastFundingRate": float_text(float(last.rate[-1]) if len(last) else 0.0, 8),
                "interestRate": "0.00010000",
                "nextFundingTime": (now // step + 1) * step,
                "time": now,
            }
        )
    return json_response(rows[0] if q.get("symbol") else rows)


# --------------------------------------------------------------------------- open interest


def oi_snapshot_value(state: SandboxState, listing: Listing) -> tuple[float, float, int]:
    now = state.now_ms()
    oi, mark = market.open_interest(state.seed, listing, np.array([now], dtype=np.int64))
    step = 10**listing.lot_decimals
    return round(float(oi[0]) * step) / step, float(mark[0]), now


async def open_interest(request: web.Request) -> web.Response:
    state = request.app[STATE]
    q = request.query
    check_params(q, {"symbol"})
    listing = symbol_listing(state, PERP, required(q, "symbol"))
    oi, _, now = oi_snapshot_value(state, listing)
    return json_response(
        {
            "openInterest": float_text(oi, listing.lot_decimals),
            "symbol": listing.native,
            "time": now,
        }
    )


async def open_interest_hist(request: web.Request) -> web.Response:
    state = request.app[STATE]
    q = request.query
    check_params(q, {"symbol", "period", "limit", "startTime", "endTime"})
    symbol = required(q, "symbol")
    period = required(q, "period")
    start, end = timestamp(q, "startTime"), timestamp(q, "endTime")
    limit = limit_param(q, 30, 500)
    listing = symbol_listing(state, PERP, symbol)
    if period not in OI_PERIODS:
        raise invalid("period")
    if start is not None and end is not None and start > end:
        raise error(-1023, "Start time is greater than end time.")
    step = BINANCE_BARS[period].length_ms
    now = state.now_ms()
    for name, value in (("startTime", start), ("endTime", end)):
        if value is not None and value < now - OI_HISTORY_MS:
            raise error(-1130, f"parameter '{name}' is invalid.")
    first = max(now - OI_HISTORY_MS, listing.listed_ms)
    first = -(-first // step) * step
    times = np.arange(first, now // step * step + 1, step, dtype=np.int64)
    times = _window(times, start, end, limit)
    times = times[state.keep("binance", listing.symbol, times)]
    oi, mark = market.open_interest(state.seed, listing, times)
    value = oi * mark
    rows = [
        {
            "symbol": listing.native,
            "sumOpenInterest": float_text(a, 8),
            "sumOpenInterestValue": float_text(b, 8),
            "timestamp": t,
        }
        for t, a, b in zip(times.tolist(), oi.tolist(), value.tolist(), strict=True)
    ]
    return json_response(rows)


# --------------------------------------------------------------------------- 24h tickers


def ticker_row(state: SandboxState, listing: Listing, futures: bool) -> dict[str, object]:
    now = state.now_ms()
    status = futures_status(listing, now) if futures else spot_status(listing, now)
    t = market.turnover(state.seed, listing, now, trading=status == "TRADING")
    td, ld = listing.tick_decimals, listing.lot_decimals
    change = t.last - t.open
    return {
        "symbol": listing.native,
        "priceChange": float_text(change, td),
        "priceChangePercent": float_text(100 * change / t.open if t.open else 0.0, 3),
        "weightedAvgPrice": float_text((t.open + t.last) / 2, td),
        "lastPrice": float_text(t.last, td),
        "lastQty": float_text(float(listing.lot), ld),
        "openPrice": float_text(t.open, td),
        "highPrice": float_text(max(t.open, t.last), td),
        "lowPrice": float_text(min(t.open, t.last), td),
        "volume": float_text(t.volume, ld),
        "quoteVolume": float_text(t.quote_volume, 8 if not futures else 2),
        "openTime": now - DAY_MS,
        "closeTime": now,
        "count": int(t.volume / max(listing.asset.trade_size, 1e-12)),
    }


def _ticker(futures: bool) -> Callable[[web.Request], object]:
    kind = PERP if futures else SPOT
    allowed = {"symbol"} if futures else {"symbol", "symbols", "type", "symbolStatus"}

    async def handler(request: web.Request) -> web.Response:
        state = request.app[STATE]
        q = request.query
        check_params(q, allowed)
        if q.get("symbol"):
            return json_response(
                ticker_row(state, symbol_listing(state, kind, q["symbol"]), futures)
            )
        now = state.now_ms()
        chosen = [item for item in catalog.listings("binance", kind) if item.listed_ms <= now]
        if q.get("symbols"):
            chosen = [symbol_listing(state, kind, name) for name in _json_names(q["symbols"])]
        return json_response([ticker_row(state, item, futures) for item in chosen])

    return handler


# --------------------------------------------------------------------------- misc


async def server_time(request: web.Request) -> web.Response:
    return json_response({"serverTime": request.app[STATE].now_ms()})


async def ping(request: web.Request) -> web.Response:
    return json_response({})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v3/klines", _klines(futures=False)),  # type: ignore[arg-type]
        web.get("/api/v3/exchangeInfo", spot_exchange_info),
        web.get("/api/v3/ticker/24hr", _ticker(futures=False)),  # type: ignore[arg-type]
        web.get("/fapi/v1/ticker/24hr", _ticker(futures=True)),  # type: ignore[arg-type]
        web.get("/api/v3/time", server_time),
        web.get("/api/v3/ping", ping),
        web.get("/fapi/v1/klines", _klines(futures=True)),  # type: ignore[arg-type]
        web.get("/fapi/v1/exchangeInfo", futures_exchange_info),
        web.get("/fapi/v1/fundingRate", funding_rate),
        web.get("/fapi/v1/fundingInfo", funding_info),
        web.get("/fapi/v1/premiumIndex", premium_index),
        web.get("/fapi/v1/openInterest", open_interest),
        web.get("/futures/data/openInterestHist", open_interest_hist),
        web.get("/fapi/v1/time", server_time),
        web.get("/fapi/v1/ping", ping),
    ]
