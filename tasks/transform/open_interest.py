"""Open interest: bronze history and snapshot rows → silver, in base units plus quote value."""

from __future__ import annotations

import polars as pl

from models.enums import Exchange
from tasks.transform.common import FETCHED_AT, conform, epoch_ms, to_float, working_schema


def _binance(bronze: pl.DataFrame) -> pl.DataFrame:
    """openInterestHist / openInterest: `sumOpenInterest` is in base units, the value in USDT."""
    return bronze.select(
        "exchange",
        "symbol",
        epoch_ms("timestamp").alias("ts"),
        to_float("sumOpenInterest").alias("open_interest"),
        to_float("sumOpenInterestValue").alias("open_interest_value"),
        FETCHED_AT,
    )


def _okx(bronze: pl.DataFrame) -> pl.DataFrame:
    """rubik history / public open-interest: `oi` counts contracts, `oiCcy` is base units,
    `oiUsd` the USD value; silver keeps `oiCcy` so venues compare in base units."""
    return bronze.select(
        "exchange",
        "symbol",
        epoch_ms("ts").alias("ts"),
        to_float("oiCcy").alias("open_interest"),
        to_float("oiUsd").alias("open_interest_value"),
        FETCHED_AT,
    )


_NORMALIZERS = {Exchange.BINANCE: _binance, Exchange.OKX: _okx}


def normalize_open_interest(bronze: pl.DataFrame) -> pl.DataFrame:
    """Bronze open interest → silver columns plus `fetched_at`; snapshots keep their own ts."""
    schema = working_schema("open_interest")
    if bronze.is_empty():
        return pl.DataFrame(schema=schema)
    parts = []
    for (name,), rows in bronze.partition_by("exchange", as_dict=True).items():
        exchange = Exchange(str(name).lower())
        if exchange not in _NORMALIZERS:
            raise ValueError(f"{exchange} has no open-interest data")
        parts.append(conform(_NORMALIZERS[exchange](rows), schema))
    return pl.concat(parts).with_columns(pl.col("symbol").str.to_uppercase())
