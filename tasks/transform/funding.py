"""Funding: bronze funding events → silver rates with their interval and APR."""

from __future__ import annotations

import polars as pl

from models.enums import Exchange
from tasks.transform.common import FETCHED_AT, UTC_MS, conform, epoch_ms, to_float, working_schema

_KEYS = ["exchange", "symbol"]
_MS_PER_MINUTE = 60_000


def _binance(bronze: pl.DataFrame) -> pl.DataFrame:
    """USD-M fundingRate: realized rate; `markPrice` may be "" on old rows (→ null)."""
    return bronze.select(
        *_KEYS,
        epoch_ms("fundingTime").alias("ts"),
        to_float("fundingRate").alias("funding_rate"),
        to_float("markPrice").alias("mark_price"),
        FETCHED_AT,
    )


def _okx(bronze: pl.DataFrame) -> pl.DataFrame:
    """funding-rate-history: `realizedRate` (what was paid) when present, else `fundingRate`."""
    return bronze.select(
        *_KEYS,
        epoch_ms("fundingTime").alias("ts"),
        pl.coalesce(to_float("realizedRate"), to_float("fundingRate")).alias("funding_rate"),
        pl.lit(None, pl.Float64).alias("mark_price"),
        FETCHED_AT,
    )


_NORMALIZERS = {Exchange.BINANCE: _binance, Exchange.OKX: _okx}


def _interval_hours(events: pl.DataFrame, previous: pl.DataFrame | None) -> pl.DataFrame:
    """Hours since the preceding funding time per (exchange, symbol), rounded to the minute.

    Known events are this frame's plus `previous` (earlier silver rows). The first known event
    of a series, having no predecessor, takes the spacing to the next event; a lone event gets
    null (never a default, never forward-filled) and is quarantined by validation.
    """
    known = events.select(*_KEYS, "ts")
    if previous is not None and not previous.is_empty():
        known = pl.concat([known, previous.select(*_KEYS, pl.col("ts").cast(UTC_MS))])
    known = known.drop_nulls().unique().sort(*_KEYS, "ts")
    ms = pl.col("ts").dt.epoch("ms")
    back = (ms - ms.shift(1)).over(_KEYS)
    ahead = (ms.shift(-1) - ms).over(_KEYS)
    minutes = (pl.coalesce(back, ahead) / _MS_PER_MINUTE).round(0)
    return known.with_columns((minutes / 60).alias("interval_hours"))


def normalize_funding(bronze: pl.DataFrame, previous: pl.DataFrame | None = None) -> pl.DataFrame:
    """Bronze funding events → silver funding columns plus `fetched_at`.

    `interval_hours` is the spacing of funding times (an 8h→4h switch shows on the first 4h
    event) and `apr = funding_rate × 24 / interval_hours × 365`.
    """
    schema = working_schema("funding")
    if bronze.is_empty():
        return pl.DataFrame(schema=schema)
    parts = []
    for (name,), rows in bronze.partition_by("exchange", as_dict=True).items():
        exchange = Exchange(str(name).lower())
        if exchange not in _NORMALIZERS:
            raise ValueError(f"{exchange} has no funding data")
        parts.append(_NORMALIZERS[exchange](rows))
    events = pl.concat(parts).with_columns(pl.col("symbol").str.to_uppercase())
    spacing = _interval_hours(events, previous)
    joined = events.join(spacing, on=[*_KEYS, "ts"], how="left", nulls_equal=False)
    with_apr = joined.with_columns(
        (pl.col("funding_rate") * 24 / pl.col("interval_hours") * 365).alias("apr")
    )
    return conform(with_apr, schema)
