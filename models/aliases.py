"""Token migrations: an exchange delists every pair of an old asset code and lists the new one.

A rename is a delisting plus a new listing (design.md; reference/exchange-apis.md §7): the old
pairs stop at `old_until`, the new ones open at `new_from` (the days between are a real gap,
not a fetch failure). `follow_renames` lets silver follow one unified symbol across it: rows of
the old pair are named by the new pair, the exchange's own name kept in `listed_as`;
`segments` tells a backfill which listed symbol to ask for over which part of a range.

Only cases verified against the exchanges' announcements (as published or reported) are in
the table; every one converted 1:1, so prices and volumes continue without scaling:

* Binance, MATIC -> POL (Polygon): all MATIC spot pairs delisted 2024-09-10 03:00 UTC, POL
  pairs opened 2024-09-13 10:00 UTC, holdings swapped 1:1 (Binance announcement, as reported
  by coingape.com "Binance Announces MATIC To POL Token Swap Support" and dailychain.news).
  The MATIC USD-M futures were settled and delisted on 2024-09-09 (no POL perpetual date is
  confirmed, so perpetuals are not aliased).
* Binance, FTM -> S (Fantom -> Sonic): all FTM spot pairs delisted 2025-01-13 11:00 UTC+8
  (03:00 UTC), S pairs opened 2025-01-16 16:00 UTC+8 (08:00 UTC), swapped 1:1 (Binance
  announcement, binance.com/en-JP/square/post/17987822306257).
* OKX, FTM -> S: FTM/USDT and FTM/USDC delisted 2025-01-13 11:00 UTC+8 (03:00 UTC), swapped 1:1
  after a snapshot on 2025-01-14 (OKX announcement as reposted, e.g. scallope.com/311.html);
  the S spot opening time is not confirmed, so `new_from` is unknown. The FTMUSDT perpetual
  was delisted 2025-01-07 08:00 UTC with no successor perpetual announced: not aliased.

Not included, for lack of a verified date: OKX and Coinbase MATIC -> POL, RNDR -> RENDER.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import polars as pl

from models.symbols import split_symbol


@dataclass(frozen=True)
class Alias:
    """One exchange's migration of an asset code (every quote of it)."""

    exchange: str
    kind: str  # spot | perp
    old: str  # old base asset, e.g. MATIC
    new: str  # new base asset, e.g. POL
    old_until: datetime  # the old pairs' last moment (delisting), UTC
    new_from: datetime | None  # the new pairs' first moment (None: not confirmed)
    ratio: float  # new units per old unit
    source: str

    def renamed(self, symbol: str) -> str | None:
        """The new unified symbol of an old one (`MATICUSDT` -> `POLUSDT`), else None."""
        try:
            base, quote = split_symbol(symbol)
        except ValueError:
            return None
        return f"{self.new}{quote}" if base == self.old else None

    def original(self, symbol: str) -> str | None:
        """The old unified symbol of a new one (`POLUSDT` -> `MATICUSDT`), else None."""
        try:
            base, quote = split_symbol(symbol)
        except ValueError:
            return None
        return f"{self.old}{quote}" if base == self.new else None


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


ALIASES: tuple[Alias, ...] = (
    Alias(
        "binance",
        "spot",
        "MATIC",
        "POL",
        _utc("2024-09-10T03:00:00"),
        _utc("2024-09-13T10:00:00"),
        1.0,
        "Binance announcement (MATIC->POL token swap), reported by coingape.com, dailychain.news",
    ),
    Alias(
        "binance",
        "spot",
        "FTM",
        "S",
        _utc("2025-01-13T03:00:00"),
        _utc("2025-01-16T08:00:00"),
        1.0,
        "Binance announcement, binance.com/en-JP/square/post/17987822306257",
    ),
    Alias(
        "okx",
        "spot",
        "FTM",
        "S",
        _utc("2025-01-13T03:00:00"),
        None,
        1.0,
        "OKX announcement (FTM->S token migration), as reposted",
    ),
)


def aliases_for(exchange: str, kind: str = "spot") -> tuple[Alias, ...]:
    return tuple(a for a in ALIASES if a.exchange == exchange and a.kind == kind)


def current_symbol(symbol: str, exchange: str, kind: str = "spot") -> str:
    """The symbol a listing is followed under: the newest name along the exchange's renames."""
    seen = {symbol}
    changed = True
    while changed:
        changed = False
        for alias in aliases_for(exchange, kind):
            new = alias.renamed(symbol)
            if new is not None and new not in seen:
                symbol, changed = new, True
                seen.add(new)
    return symbol


def segments(
    symbol: str, exchange: str, start: datetime, end: datetime, kind: str = "spot"
) -> list[tuple[str, datetime, datetime]]:
    """The listed symbols to fetch to follow `symbol` (old or new name) over [start, end):
    `(listed symbol, from, until)` pieces in time order, empty pieces left out. Without a
    rename, the one piece `(symbol, start, end)`."""
    pieces: list[tuple[str, datetime, datetime]] = []
    current = current_symbol(symbol, exchange, kind)
    cursor_end = end
    name = current
    while True:
        alias = next((a for a in aliases_for(exchange, kind) if a.original(name) is not None), None)
        if alias is None:
            pieces.append((name, start, cursor_end))
            break
        switch = alias.new_from or alias.old_until
        if switch < cursor_end:
            pieces.append((name, max(start, switch), cursor_end))
        cursor_end = min(cursor_end, alias.old_until)
        name = alias.original(name) or name
        if cursor_end <= start:
            break
    return [p for p in reversed(pieces) if p[1] < p[2]]


def former_names(
    symbols: tuple[str, ...], exchanges: tuple[str, ...], start: datetime, end: datetime
) -> tuple[str, ...]:
    """`symbols` with, after each, the former names (spot) it was listed under on any of
    `exchanges` within [start, end), so a backfill of `POLUSDT` over 2024 also lands the
    `MATICUSDT` history that silver follows it through. In order, without repeats."""
    out: list[str] = []
    for symbol in symbols:
        names = [symbol]
        for exchange in exchanges:
            names += [name for name, _, _ in segments(symbol, exchange, start, end)]
        out += [name for name in dict.fromkeys(names) if name not in out]
    return tuple(out)


Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


def follow_renames(
    frame: Frame, exchange: str | None = None, *, kind: str = "spot", ts: str = "ts"
) -> Frame:
    """Silver rows with `symbol` followed across renames (pure: Polars in, Polars out; eager
    or lazy). `tasks.transform.renames.follow_series` builds one symbol's series with it.

    Rows of an old pair up to its delisting (`ts` before `old_until`) are named by the new
    pair; the exchange's own name goes to a new column `listed_as` (equal to `symbol` for the
    rest). The exchange is the frame's `exchange` column, else `exchange`. Prices and volumes
    are unchanged (every aliased migration was 1:1).
    """
    listed = pl.col("symbol")
    out = frame.with_columns(listed.alias("listed_as"))
    if isinstance(frame, pl.DataFrame) and frame.is_empty():
        return out
    exch = pl.col("exchange") if "exchange" in frame.collect_schema().names() else pl.lit(exchange)
    symbol = listed
    for alias in ALIASES:
        if alias.kind != kind:
            continue
        hit = (exch == alias.exchange) & listed.str.starts_with(alias.old)
        quote = listed.str.slice(len(alias.old))
        hit = hit & quote.is_in(_QUOTES) & (pl.col(ts) < pl.lit(alias.old_until))
        symbol = pl.when(hit).then(pl.lit(alias.new) + quote).otherwise(symbol)
    return out.with_columns(symbol.alias("symbol"))


_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "USD", "EUR", "BTC", "ETH")
