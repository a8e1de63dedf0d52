"""OKX v5 public endpoints: candles, funding-rate history, open interest, instruments.

Envelope ``{"code":"0","msg":"","data":[...]}``, every value a string, rows newest first,
``after``/``before`` exclusive cursors (``after``: older than, ``before``: newer than), and the
newest ``limit`` rows inside the cursors. ``limit`` above the maximum is clamped. Candle bars from
``1m`` to ``3M``/``3Mutc`` are served (not the sub-minute ``1s``: 51000). Unknown instruments
answer HTTP 200 with code 51001, as the OKX error table lists it; so do delisted instruments
OKX no longer serves (`sandbox.universe`). `/public/instruments` lists only instruments not
delisted (OKX drops them); `/market/tickers` serves the 24 h figures of those.

Contract open-interest history (Trading Statistics / "rubik"):
``GET /api/v5/rubik/stat/contracts/open-interest-history`` with ``instId`` (required, SWAP or
FUTURES), ``period`` (default ``5m``; ``5m 15m 30m 1H 2H 4H``, UTC+8 ``6H 12H 1D 2D 3D 5D 1W 1M
3M`` and UTC ``6Hutc 12Hutc 1Dutc 2Dutc 3Dutc 5Dutc 1Wutc 1Mutc 3Mutc``), ``end`` (records earlier
than ts), ``begin`` (records newer than ts), ``limit`` (default and maximum 100). Only the latest
1,440 entries of a period are served; rows are arrays ``[ts, oi, oiCcy, oiUsd]`` (contracts,
base currency, USD), newest first; rate limit 10 requests / 2 s per IP and instrument. Sources:
the OKX docs-v5 "Get contract open interest history" section (as mirrored in public repos) and
ccxt's okx ``fetch_open_interest_history`` / ``handle_trading_statistics_window``, which treat
both bounds as exclusive and expect the latest entries first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import partial

import numpy as np
from aiohttp import web

from sandbox import catalog, market
from sandbox.common import ApiError, json_response, trim_text, trimmed
from sandbox.listing import DAY_MS, HOUR_MS, PERP, SPOT, Listing, step_parts
from sandbox.market import MINUTE_MS, Bar
from sandbox.pages import RowFormat, page
from sandbox.state import STATE, SandboxState

FAR_MS = 2**62
_NUMBER = re.compile(r"^[0-9]{1,20}$")
CHINA = 8 * HOUR_MS
RECENT_CANDLES = 1440
FUNDING_HISTORY_MS = 92 * DAY_MS
OI_HISTORY_ENTRIES = 1440


def _bars() -> dict[str, Bar]:
    bars = {
        "1m": Bar(MINUTE_MS),
        "3m": Bar(3 * MINUTE_MS),
        "5m": Bar(5 * MINUTE_MS),
        "15m": Bar(15 * MINUTE_MS),
        "30m": Bar(30 * MINUTE_MS),
        "1H": Bar(HOUR_MS),
        "2H": Bar(2 * HOUR_MS),
        "4H": Bar(4 * HOUR_MS),
    }
    for name, length in (
        ("6H", 6 * HOUR_MS),
        ("12H", 12 * HOUR_MS),
        ("1D", DAY_MS),
        ("2D", 2 * DAY_MS),
        ("3D", 3 * DAY_MS),
        ("5D", 5 * DAY_MS),
    ):
        bars[name] = Bar(length, -CHINA)
        bars[f"{name}utc"] = Bar(length, 0)
    bars["1W"] = Bar(7 * DAY_MS, 4 * DAY_MS - CHINA)
    bars["1Wutc"] = Bar(7 * DAY_MS, 4 * DAY_MS)
    bars["1M"] = Bar(31 * DAY_MS, CHINA, months=1)
    bars["1Mutc"] = Bar(31 * DAY_MS, 0, months=1)
    bars["3M"] = Bar(92 * DAY_MS, CHINA, months=3)
    bars["3Mutc"] = Bar(92 * DAY_MS, 0, months=3)
    return bars  # fmt: skip


OKX_BARS = _bars()
CANDLE_BARS = {name: bar for name, bar in OKX_BARS.items() if name not in ("5D", "5Dutc")}


def ok(data: object) -> web.Response:
    return json_response({"code": "0", "msg": "", "data": data})


def error(code: str, msg: str, status: int = 400) -> ApiError:
    return ApiError(status, {"code": code, "data": [], "msg": msg})


def empty_param(name: str) -> ApiError:
    return error("50014", f"Parameter {name} can not be empty")


def bad_param(name: str) -> ApiError:
    return error("51000", f"Parameter {name} error")


UNKNOWN_INSTRUMENT = error("51001", "Instrument ID does not exist", status=200)
UNAVAILABLE = error("50001", "Service temporarily unavailable. Please try again later.", 503)
RATE_LIMIT_BODY = {"msg": "Too Many Requests", "code": "50011"}


def required(query: Mapping[str, str], name: str) -> str:
    value = query.get(name, "")
    if not value:
        raise empty_param(name)
    return value


def number(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    if not _NUMBER.match(value):
        raise bad_param(name)
    return int(value)


def limit_param(query: Mapping[str, str], default: int, maximum: int) -> int:
    value = number(query, "limit")
    if value is None:
        return default
    if value <= 0:
        raise bad_param("limit")
    return min(value, maximum)


def instrument(state: SandboxState, inst_id: str, kinds: tuple[str, ...] = (SPOT, PERP)) -> Listing:
    """The listing an instId names; 51001 for an unknown one, and for a delisted one OKX no
    longer serves (`Listing.purged`); a delisted one still served answers with its history."""
    for kind in kinds:
        listing = catalog.by_native("okx", kind, inst_id)
        if listing is not None:
            if not listing.serves(state.now_ms()):
                raise UNKNOWN_INSTRUMENT
            state.check_fail("okx", listing.symbol, UNAVAILABLE)
            return listing
    raise UNKNOWN_INSTRUMENT


def listed(state: SandboxState, kind: str) -> list[Listing]:
    """What `/public/instruments` lists now: listed, not yet delisted (OKX drops those)."""
    now = state.now_ms()
    return [
        item
        for item in catalog.listings("okx", kind)
        if item.listed_ms <= now and not item.delisted_at(now)
    ]


# --------------------------------------------------------------------------- candles


def candle_rows(
    listing: Listing, bar: Bar, c: market.Candles, now_ms: int
) -> list[tuple[str, ...]]:
    """Candle rows, oldest first (the endpoints serve them newest first)."""
    td = listing.tick_decimals
    lm, ld = listing.lot_parts
    o, h, lo, cl = (trimmed(getattr(c, f), td) for f in ("open", "high", "low", "close"))
    quote = trimmed(c.quote_volume * lm, td + ld)
    if listing.kind == PERP:
        vol = list(map(str, c.volume.tolist()))  # contracts
        vol_ccy = trimmed(c.volume * lm, ld)
    else:
        vol = trimmed(c.volume * lm, ld)
        vol_ccy = quote
    confirm = np.where(bar.close_times(c.ts) <= now_ms, "1", "0").tolist()
    ts = map(str, c.ts.tolist())
    return list(zip(ts, o, h, lo, cl, vol, vol_ccy, quote, confirm, strict=True))


CANDLE_ROWS = RowFormat(candle_rows, newest_first=True)


def _candles(recent: bool):  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.Response:
        state = request.app[STATE]
        q = request.query
        inst_id = required(q, "instId")
        bar_name = q.get("bar") or "1m"
        after, before = number(q, "after"), number(q, "before")
        limit = limit_param(q, 100, 300)
        listing = instrument(state, inst_id)
        bar = CANDLE_BARS.get(bar_name)
        if bar is None:
            raise bad_param("bar")
        now = state.now_ms()
        low = 0 if before is None else before + 1
        if recent:
            latest = bar.floor(now)
            if bar.months:
                oldest = latest - (RECENT_CANDLES - 1) * 31 * DAY_MS
            else:
                oldest = latest - (RECENT_CANDLES - 1) * bar.length_ms
            low = max(low, oldest)
        high = FAR_MS if after is None else after
        keep = partial(state.keep, "okx", listing.symbol)
        rows = page(
            state.seed, listing, bar, CANDLE_ROWS, low, high, limit, now, last=True, keep=keep
        )
        return ok(rows)

    return handler


# --------------------------------------------------------------------------- funding


def _newest(times: np.ndarray, after: int | None, before: int | None, limit: int) -> np.ndarray:
    """The newest ``limit`` of ascending ``times`` strictly between the cursors, ascending."""
    lo = 0 if before is None else int(np.searchsorted(times, before, "right"))
    hi = len(times) if after is None else int(np.searchsorted(times, after, "left"))
    return times[max(lo, hi - limit) : hi]


async def funding_rate_history(request: web.Request) -> web.Response:
    state = request.app[STATE]
    q = request.query
    inst_id = required(q, "instId")
    after, before = number(q, "after"), number(q, "before")
    limit = limit_param(q, 400, 400)
    listing = instrument(state, inst_id, (PERP,))
    now = state.now_ms()
    times, _ = market.funding_times(
        listing, max(listing.listed_ms, now - FUNDING_HISTORY_MS), now + 1
    )
    times = _newest(times, after, before, limit)
    times = times[state.keep("okx", listing.symbol, times)]
    rows: list[object] = []
    if len(times):
        f = market.funding(state.seed, listing, int(times[0]), int(times[-1]) + 1)
        keep = np.isin(f.time, times)
        for t, rate, predicted in zip(
            f.time[keep].tolist(), f.rate[keep].tolist(), f.predicted[keep].tolist(), strict=True
        ):
            rows.append(
                {
                    "formulaType": "withRate",
                    "fundingRate": trim_text(predicted, 16),
                    "fundingTime": str(t),
                    "instId": listing.native,
                    "instType": "SWAP",
                    "method": "current_period",
                    "realizedRate": trim_text(rate, 16),
                }
            )
    return ok(rows[::-1])


# --------------------------------------------------------------------------- open interest


def oi_figures(state: SandboxState, listing: Listing, times: np.ndarray) -> list[list[str]]:
    """[ts, oi (contracts), oiCcy, oiUsd] for each time, ascending."""
    base, mark = market.open_interest(state.seed, listing, times)
    ct_m, ct_d = step_parts(listing.contract_value)
    contracts = np.rint(base / float(listing.contract_value)).astype(np.int64)
    ccy = trimmed(contracts * ct_m, ct_d)
    usd = contracts * float(listing.contract_value) * mark
    return [
        [str(t), str(n), ccy[i], trim_text(u, 4)]
        for i, (t, n, u) in enumerate(
            zip(times.tolist(), contracts.tolist(), usd.tolist(), strict=True)
        )
    ]


async def open_interest(request: web.Request) -> web.Response:
    state = request.app[STATE]
    q = request.query
    inst_type = required(q, "instType")
    if inst_type not in ("SWAP", "FUTURES", "OPTION"):
        raise bad_param("instType")
    if inst_type == "OPTION" and not (q.get("instFamily") or q.get("uly")):
        raise empty_param("instFamily")
    if q.get("instId"):
        chosen = [instrument(state, q["instId"], (PERP,))]
    else:
        chosen = listed(state, PERP) if inst_type == "SWAP" else []
    if inst_type != "SWAP":
        chosen = []
    now = state.now_ms()
    data: list[object] = []
    for listing in chosen:
        if listing.listed_ms > now:
            continue
        ts, oi, ccy, usd = oi_figures(state, listing, np.array([now], dtype=np.int64))[0]
        data.append({"instType": "SWAP", "instId": listing.native, "oi": oi, "oiCcy": ccy,
                     "oiUsd": usd, "ts": ts})  # fmt: skip
    return ok(data)


def period_times(bar: Bar, first: int, last: int) -> np.ndarray:
    """Bucket open times of ``bar`` in [first, last]."""
    start = bar.floor(first)
    if start < first:
        start = bar.next_open(start)
    if not bar.months:
        return np.arange(start, last + 1, bar.length_ms, dtype=np.int64)
    out = []
    while start <= last:
        out.append(start)
        start = bar.next_open(start)
    return np.array(out, dtype=np.int64)


async def open_interest_history(request: web.Request) -> web.Response:
    state = request.app[STATE]
    q = request.query
    inst_id = required(q, "instId")
    period = q.get("period") or "5m"
    end, begin = number(q, "end"), number(q, "begin")
    limit = limit_param(q, 100, 100)
    listing = instrument(state, inst_id, (PERP,))
    bar = OKX_BARS.get(period)
    if bar is None or bar.length_ms < 5 * MINUTE_MS:
        raise bad_param("period")
    now = state.now_ms()
    latest = bar.floor(now)
    span = (OI_HISTORY_ENTRIES - 1) * (31 * DAY_MS if bar.months else bar.length_ms)
    times = period_times(bar, max(listing.listed_ms, latest - span), latest)
    times = times[-OI_HISTORY_ENTRIES:]
    times = _newest(times, end, begin, limit)
    times = times[state.keep("okx", listing.symbol, times)]
    return ok(oi_figures(state, listing, times)[::-1])


# --------------------------------------------------------------------------- instruments


def instrument_row(listing: Listing, inst_type: str) -> dict[str, str]:
    perp = listing.kind == PERP
    family = f"{listing.base}-{listing.quote}" if perp else ""
    return {
        "instType": inst_type,
        "instId": listing.native,
        "instIdCode": str(market.stable_key("okx", listing.native) % 10**6),
        "uly": family,
        "instFamily": family,
        "baseCcy": "" if perp else listing.base,
        "quoteCcy": "" if perp else listing.quote,
        "settleCcy": listing.quote if perp else "",
        "ctVal": listing.contract_value if perp else "",
        "ctMult": "1" if perp else "",
        "ctValCcy": listing.base if perp else "",
        "ctType": "linear" if perp else "",
        "optType": "",
        "stk": "",
        "listTime": str(listing.listed_ms),
        "expTime": "",
        "lever": "50" if perp else "10",
        "tickSz": listing.tick,
        "lotSz": "1" if perp else listing.lot,
        "minSz": "0.01" if perp else listing.lot,
        "maxLmtSz": "100000000",
        "maxMktSz": "1000000",
        "maxLmtAmt": "20000000",
        "maxMktAmt": "1000000",
        "alias": "",
        "state": listing.status or "live",
        "ruleType": "normal",
        "category": "1",
    }


async def instruments(request: web.Request) -> web.Response:
    state = request.app[STATE]
    q = request.query
    inst_type = required(q, "instType")
    if inst_type not in ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION"):
        raise bad_param("instType")
    if inst_type == "OPTION" and not (q.get("instFamily") or q.get("uly")):
        raise empty_param("instFamily")
    kind = {"SPOT": SPOT, "MARGIN": SPOT, "SWAP": PERP}.get(inst_type)
    chosen = listed(state, kind) if kind else []
    if q.get("instId"):
        chosen = [item for item in chosen if item.native == q["instId"]]
        if not chosen:
            raise UNKNOWN_INSTRUMENT
    return ok([instrument_row(item, inst_type) for item in chosen])


async def server_time(request: web.Request) -> web.Response:
    return ok([{"ts": str(request.app[STATE].now_ms())}])


# --------------------------------------------------------------------------- tickers


def ticker_row(state: SandboxState, listing: Listing, inst_type: str) -> dict[str, str]:
    """`/market/tickers` row: `vol24h` in base (contracts for swaps), `volCcy24h` in quote for
    SPOT and in base for SWAP, as the docs define them."""
    now = state.now_ms()
    t = market.turnover(state.seed, listing, now, trading=not listing.status)
    td = listing.tick_decimals
    perp = listing.kind == PERP
    contracts = t.volume / float(listing.contract_value) if perp else t.volume
    return {
        "instType": inst_type,
        "instId": listing.native,
        "last": trim_text(t.last, td),
        "lastSz": listing.lot,
        "askPx": trim_text(t.last * 1.0001, td),
        "askSz": "1",
        "bidPx": trim_text(t.last * 0.9999, td),
        "bidSz": "1",
        "open24h": trim_text(t.open, td),
        "high24h": trim_text(max(t.open, t.last), td),
        "low24h": trim_text(min(t.open, t.last), td),
        "volCcy24h": trim_text(t.volume if perp else t.quote_volume, 4),
        "vol24h": trim_text(contracts, 4),
        "ts": str(now),
        "sodUtc0": trim_text(t.open, td),
        "sodUtc8": trim_text(t.open, td),
    }


async def tickers(request: web.Request) -> web.Response:
    state = request.app[STATE]
    q = request.query
    inst_type = required(q, "instType")
    if inst_type not in ("SPOT", "SWAP", "FUTURES", "OPTION"):
        raise bad_param("instType")
    kind = {"SPOT": SPOT, "SWAP": PERP}.get(inst_type)
    chosen = listed(state, kind) if kind else []
    return ok([ticker_row(state, item, inst_type) for item in chosen])


def instrument_key(path: str, query: Mapping[str, str]) -> str:
    """The rate-limit key part an OKX endpoint adds to the IP (instrument or type)."""
    return query.get("instId") or query.get("instType") or ""


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v5/market/candles", _candles(recent=True)),
        web.get("/api/v5/market/history-candles", _candles(recent=False)),
        web.get("/api/v5/public/funding-rate-history", funding_rate_history),
        web.get("/api/v5/public/open-interest", open_interest),
        web.get("/api/v5/public/instruments", instruments),
        web.get("/api/v5/market/tickers", tickers),
        web.get("/api/v5/public/time", server_time),
        web.get("/api/v5/rubik/stat/contracts/open-interest-history", open_interest_history),
    ]
