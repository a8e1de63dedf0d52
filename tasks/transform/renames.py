"""Following one unified symbol across token renames in silver (issue 17), pure Polars.

Silver keeps every listing under the exchange's own symbol (MATICUSDT rows stay MATICUSDT):
that is what the exchange served, what bronze, coverage and planning are keyed by, and what a
re-fetch must ask for. Following a rename is a read over silver, not a rewrite of it:
`follow_series` takes silver rows (eager or lazy: a warehouse scan pushes the symbol filter
down to the files) and returns the one continuous series of a symbol, old name or new, each
row named by the symbol it is followed under (`models.aliases.current_symbol`) and carrying
the exchange's own name in `listed_as`. `aggregate_followed` is the cross-exchange aggregate
of such a series. `rename_gaps` are the spans where the followed symbol had no listing at all
on an exchange (between a delisting and the successor's opening): real gaps, not missing data.

    scan = Warehouse(uri).scan(Layer.SILVER, "ohlcv")
    pol = follow_series(scan, "POLUSDT").filter(pl.col("interval") == "1m").collect()
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

import polars as pl

from models.aliases import ALIASES, aliases_for, current_symbol, follow_renames
from tasks.transform.aggregate import aggregate_ohlcv

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)

LISTED_AS = "listed_as"
# The columns that identify a row in silver's time series (those present are used).
_KEY = ("exchange", "symbol", "interval", "ts")


def listed_names(symbol: str, exchange: str, kind: str = "spot") -> tuple[str, ...]:
    """Every symbol an exchange listed the followed `symbol` under (old name or new), newest
    first: `POLUSDT` and `MATICUSDT` on Binance, just the symbol where nothing was renamed."""
    name = current_symbol(symbol, exchange, kind)
    out = [name]
    while True:
        older = next(
            (a.original(name) for a in aliases_for(exchange, kind) if a.original(name)), None
        )
        if older is None or older in out:
            return tuple(out)
        out.append(older)
        name = older


def rename_gaps(
    symbol: str, exchange: str, kind: str = "spot"
) -> list[tuple[datetime, datetime | None]]:
    """The spans `[old delisted, new opened)` in which the followed `symbol` was listed under
    no name on `exchange`, in time order (`None`: the successor's opening is not confirmed)."""
    names = listed_names(symbol, exchange, kind)
    spans = {
        (a.old_until, a.new_from)
        for a in aliases_for(exchange, kind)
        for name in names
        if a.renamed(name) in names
    }
    return sorted((s for s in spans if s[1] is None or s[0] < s[1]), key=lambda s: s[0])


def _aliased_exchanges(kind: str) -> tuple[str, ...]:
    return tuple(sorted({a.exchange for a in ALIASES if a.kind == kind}))


def follow_series(
    rows: Frame, symbol: str, *, kind: str = "spot", exchanges: list[str] | None = None
) -> Frame:
    """The continuous series of `symbol` (old or new name) in silver rows with `exchange`,
    `symbol` and `ts` columns (ohlcv, funding, open interest; eager or lazy).

    Per exchange: the rows of every name the exchange listed it under (`listed_names`) are
    kept, named by the symbol it is followed under there and with the exchange's own name in
    `listed_as`; rows of an old name at or after its delisting are left out (no exchange
    serves them). Where an old and a new listing both hold a row for one key, the new
    listing's is kept. Prices and volumes are unchanged (every aliased migration was 1:1).
    Rows are sorted by (exchange, symbol, interval, ts). `exchanges` limits the exchanges.
    """
    exch, listed = pl.col("exchange"), pl.col("symbol")
    aliased = _aliased_exchanges(kind)
    wanted = listed.eq(symbol) & ~exch.is_in(aliased)
    followed_as = pl.lit(symbol)
    for exchange in aliased:
        names = listed_names(symbol, exchange, kind)
        wanted = wanted | (exch.eq(exchange) & listed.is_in(names))
        followed_as = pl.when(exch.eq(exchange)).then(pl.lit(names[0])).otherwise(followed_as)
    if exchanges is not None:
        wanted = wanted & exch.is_in(exchanges)
    picked = rows.filter(wanted)
    named = follow_renames(picked, kind=kind).filter(pl.col("symbol").eq(followed_as))
    columns = named.collect_schema().names()
    key: list[str] = [c for c in _KEY if c in columns]
    # The followed listing's own rows first, so that `unique(keep="first")` keeps them.
    own = pl.col(LISTED_AS).ne(pl.col("symbol")).alias("_older")
    return (
        named.with_columns(own)
        .sort([*key, "_older"])
        .unique(subset=key, keep="first", maintain_order=True)
        .drop("_older")
    )


def aggregate_followed(
    ohlcv: pl.DataFrame, symbol: str, *, quote: str = "USDT"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The cross-exchange aggregate (`aggregate_ohlcv`) of `symbol` followed across renames:
    silver/ohlcv_aggregated's schema, under the followed names; (aggregated, excluded)."""
    followed = follow_series(ohlcv, symbol).drop(LISTED_AS)
    return aggregate_ohlcv(followed, quote=quote)
