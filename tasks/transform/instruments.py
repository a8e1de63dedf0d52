"""Instruments: bronze listings → silver identity rows (exchange, symbol, native id, kind)."""

from __future__ import annotations

import polars as pl

from tasks.transform.common import FETCHED_AT, conform, working_schema

# Kind spellings an exchange object may carry, mapped to the silver kinds.
_KINDS = {"swap": "perp", "perpetual": "perp", "spot": "spot", "perp": "perp"}


def normalize_instruments(bronze: pl.DataFrame) -> pl.DataFrame:
    """Bronze instruments → silver columns plus `fetched_at`; the raw JSON stays in bronze.

    Asset codes are upper-cased and kinds mapped to spot|perp; anything else is left for
    validation to reject. `status` keeps the exchange's own word (TRADING, online, live).
    """
    schema = working_schema("instruments")
    if bronze.is_empty():
        return pl.DataFrame(schema=schema)
    kind = pl.col("kind").str.strip_chars().str.to_lowercase()
    rows = bronze.select(
        pl.col("exchange").str.to_lowercase(),
        pl.col("symbol").str.to_uppercase(),
        "native_symbol",
        pl.col("base").str.strip_chars().str.to_uppercase(),
        pl.col("quote").str.strip_chars().str.to_uppercase(),
        kind.replace(_KINDS).alias("kind"),
        pl.col("status").str.strip_chars(),
        FETCHED_AT,
    )
    return conform(rows, schema)
