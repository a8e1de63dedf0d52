"""Shared pieces of the sandbox endpoints: errors, JSON answers, number formatting, paging."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
from aiohttp import web

from sandbox import market
from sandbox.listing import Listing
from sandbox.market import Bar, Candles


class ApiError(Exception):
    """An exchange-shaped error answer."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type="application/json",
        headers=headers,
    )


# --------------------------------------------------------------------------- formatting


def fixed(units: np.ndarray, decimals: int, out_decimals: int) -> list[str]:
    """Integers in units of 10**-decimals as strings with exactly ``out_decimals`` decimals."""
    if out_decimals >= decimals:
        values = units * 10 ** (out_decimals - decimals)
    else:
        values = units // 10 ** (decimals - out_decimals)
    if out_decimals == 0:
        return list(map(str, values.tolist()))
    whole, frac = np.divmod(values, 10**out_decimals)
    return list(
        map(f"%d.%0{out_decimals}d".__mod__, zip(whole.tolist(), frac.tolist(), strict=True))
    )


def trimmed(units: np.ndarray, decimals: int) -> list[str]:
    """Integers in units of 10**-decimals as the shortest exact decimal strings."""
    return [s.rstrip("0").rstrip(".") if "." in s else s for s in fixed(units, decimals, decimals)]


def floats(units: np.ndarray, decimals: int) -> list[float]:
    """Integers in units of 10**-decimals as the nearest floats (they print as the decimals)."""
    return (units / 10**decimals).tolist()  # type: ignore[no-any-return]


def float_text(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def trim_text(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


# --------------------------------------------------------------------------- paging


def forward(
    seed: int, listing: Listing, bar: Bar, start_ms: int, end_ms: int, limit: int, now_ms: int
) -> Candles:
    """The first ``limit`` candles with open time in [start_ms, end_ms)."""
    bound = min(end_ms, now_ms + 1)
    start_ms = max(start_ms, bar.floor(listing.listed_ms))
    parts: list[Candles] = []
    count, cursor, span = 0, start_ms, limit * bar.length_ms
    while count < limit and cursor < bound:
        hi = min(bound, cursor + span)
        chunk = market.candles(seed, listing, bar, cursor, hi, now_ms)
        parts.append(chunk)
        count += len(chunk)
        cursor, span = hi, span * 2
    return Candles.concat(parts).take(slice(0, limit))


def backward(
    seed: int, listing: Listing, bar: Bar, start_ms: int, end_ms: int, limit: int, now_ms: int
) -> Candles:
    """The last ``limit`` candles with open time in [start_ms, end_ms)."""
    low = max(start_ms, bar.floor(listing.listed_ms))
    parts: list[Candles] = []
    count, cursor, span = 0, min(end_ms, now_ms + 1), limit * bar.length_ms
    while count < limit and cursor > low:
        lo = max(low, cursor - span)
        chunk = market.candles(seed, listing, bar, lo, cursor, now_ms)
        parts.append(chunk)
        count += len(chunk)
        cursor, span = lo, span * 2
    out = Candles.concat(parts[::-1])
    return out.take(slice(max(0, len(out) - limit), len(out)))


def drop_days(ts: np.ndarray, days: set[int]) -> np.ndarray:
    """Boolean mask keeping rows whose UTC day number is not in ``days``."""
    if not days or len(ts) == 0:
        return np.ones(len(ts), dtype=bool)
    return ~np.isin(ts // market.DAY_MS, np.fromiter(days, dtype=np.int64))
