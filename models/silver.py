"""Silver contracts (design.md §6): pydantic models define them once; Polars schemas derive.

Timestamps are `timestamp[ms, UTC]`; prices and volumes float64.
"""

from __future__ import annotations

import types
from datetime import datetime
from typing import Any, Union, get_args, get_origin

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from models.enums import Dataset

UTC_MS = pl.Datetime("ms", "UTC")


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True)


class OhlcvRow(_Row):
    exchange: str
    symbol: str
    interval: str
    ts: datetime = Field(description="candle open time")
    open: float
    high: float
    low: float
    close: float
    volume: float = Field(description="base units")
    quote_volume: float | None = None
    trades: int | None = None


class OhlcvAggregatedRow(_Row):
    symbol: str
    interval: str
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    vwap: float
    n_exchanges: int
    exchanges: list[str]


class FundingRow(_Row):
    exchange: str
    symbol: str
    ts: datetime = Field(description="funding time")
    funding_rate: float
    mark_price: float | None = None
    interval_hours: float
    apr: float


class OpenInterestRow(_Row):
    exchange: str
    symbol: str
    ts: datetime
    open_interest: float
    open_interest_value: float | None = None


class InstrumentRow(_Row):
    exchange: str
    symbol: str
    native_symbol: str
    base: str
    quote: str
    kind: str
    status: str


_SCALARS: dict[type, pl.DataType] = {
    str: pl.String(),
    int: pl.Int64(),
    float: pl.Float64(),
    bool: pl.Boolean(),
    datetime: UTC_MS,
}


def _dtype(annotation: Any) -> pl.DataType:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        return _dtype(inner[0])
    if origin is list:
        return pl.List(_dtype(get_args(annotation)[0]))
    return _SCALARS[annotation]


def polars_schema(model: type[BaseModel]) -> pl.Schema:
    """Polars schema derived from a row model, field order preserved."""
    return pl.Schema({name: _dtype(f.annotation) for name, f in model.model_fields.items()})


def nullable_columns(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(
        name
        for name, f in model.model_fields.items()
        if get_origin(f.annotation) in (Union, types.UnionType)
        and type(None) in get_args(f.annotation)
    )


SILVER_MODELS: dict[str, type[BaseModel]] = {
    Dataset.OHLCV.value: OhlcvRow,
    "ohlcv_aggregated": OhlcvAggregatedRow,
    Dataset.FUNDING.value: FundingRow,
    Dataset.OPEN_INTEREST.value: OpenInterestRow,
    Dataset.INSTRUMENTS.value: InstrumentRow,
}

SILVER_SCHEMAS: dict[str, pl.Schema] = {k: polars_schema(m) for k, m in SILVER_MODELS.items()}

# Unique keys per silver dataset.
SILVER_KEYS: dict[str, tuple[str, ...]] = {
    "ohlcv": ("exchange", "symbol", "interval", "ts"),
    "ohlcv_aggregated": ("symbol", "interval", "ts"),
    "funding": ("exchange", "symbol", "ts"),
    "open_interest": ("exchange", "symbol", "ts"),
    "instruments": ("exchange", "symbol", "kind"),
}

QUARANTINE_REASON = "reason"
