"""Instruments: bronze listings → silver identity rows (exchange, symbol, native id, kind)."""

from __future__ import annotations

import polars as pl

from models.enums import Exchange
from tasks.transform.common import FETCHED_AT, conform, working_schema

# Kind spellings an exchange object may carry, mapped to the silver kinds.
_KINDS = {"swap": "perp", "perpetual": "perp", "spot": "spot", "perp": "perp"}


def normalize_instruments(bronze: pl.DataFrame) -> pl.DataFrame:
    """Bronze instruments → silver columns plus `fetched_at`; the raw JSON stays in bronze.

    Asset codes are upper-cased and kinds mapped to spot|perp; anything else is left for
    validation to reject. `status` keeps the exchange's own word (TRADING, online, live).
    A Coinbase product is named by its id `BASE-QUOTE`, as the client names it
    (`clients.coinbase`): snapshots taken before it did carry `BTCAUCTION-USD` as BTCUSD (its
    currency fields), which would collide with `BTC-USD` and quarantine both listings.
    """
    schema = working_schema("instruments")
    if bronze.is_empty():
        return pl.DataFrame(schema=schema)
    kind = pl.col("kind").str.strip_chars().str.to_lowercase()
    exchange = pl.col("exchange").str.to_lowercase()
    base = pl.col("base").str.strip_chars().str.to_uppercase()
    quote = pl.col("quote").str.strip_chars().str.to_uppercase()
    parts = pl.col("native_symbol").str.to_uppercase().str.split("-")
    by_id = (exchange == Exchange.COINBASE.value) & (parts.list.len() == 2)
    by_id = by_id & (parts.list.first() != "") & (parts.list.last() != "")
    base = pl.when(by_id).then(parts.list.first()).otherwise(base)
    quote = pl.when(by_id).then(parts.list.last()).otherwise(quote)
    symbol = pl.when(by_id).then(base + quote).otherwise(pl.col("symbol").str.to_uppercase())
    rows = bronze.select(
        exchange.alias("exchange"),
        symbol.alias("symbol"),
        "native_symbol",
        base.alias("base"),
        quote.alias("quote"),
        kind.replace(_KINDS).alias("kind"),
        pl.col("status").str.strip_chars(),
        FETCHED_AT,
    )
    return conform(rows, schema)
