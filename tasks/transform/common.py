"""Helpers shared by the silver transforms: timestamp parsing, schema conforming, dedup."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import polars as pl

from models.silver import QUARANTINE_REASON, SILVER_SCHEMAS

UTC_MS = pl.Datetime("ms", "UTC")
FETCHED_AT = "fetched_at"


def epoch_ms(column: str | pl.Expr) -> pl.Expr:
    """Epoch milliseconds (integer or numeric string) as `Datetime("ms", "UTC")`; bad → null."""
    expr = pl.col(column) if isinstance(column, str) else column
    return expr.cast(pl.Int64, strict=False).cast(UTC_MS)


def to_float(column: str) -> pl.Expr:
    """A numeric string or number as float64; empty or unparseable strings become null."""
    return pl.col(column).cast(pl.Float64, strict=False)


def working_schema(dataset: str) -> pl.Schema:
    """The silver schema of `dataset` plus `fetched_at`, as produced by the normalizers."""
    return pl.Schema({**SILVER_SCHEMAS[dataset], FETCHED_AT: UTC_MS})


def quarantine_schema(dataset: str) -> pl.Schema:
    """Quarantined rows: the silver columns, `fetched_at`, and the `reason` they failed."""
    return pl.Schema({**working_schema(dataset), QUARANTINE_REASON: pl.String()})


def conform(df: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """Select `schema`'s columns in order with its dtypes; absent columns become null."""
    return df.select(
        [
            pl.col(name).cast(dtype) if name in df.columns else pl.lit(None, dtype).alias(name)
            for name, dtype in schema.items()
        ]
    )


def dedup_latest(df: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    """Keep, per key, the rows of the latest `fetched_at`; exact repeats collapse to one.

    Rows of the latest fetch that still share a key but differ in content are all kept so
    that validation can quarantine them as "duplicate key". Rows with a null key pass
    through untouched (validation rejects them). A null `fetched_at` counts as the oldest;
    without a `fetched_at` column only exact repeats collapse. Idempotent and independent
    of the input row order (the output is sorted).
    """
    keys = list(keys)
    if df.is_empty():
        return df
    latest = df
    if FETCHED_AT in df.columns:
        fetched = pl.col(FETCHED_AT).fill_null(pl.lit(0).cast(UTC_MS))
        has_null_key = pl.any_horizontal([pl.col(k).is_null() for k in keys])
        latest = df.filter(has_null_key | (fetched == fetched.max().over(keys)))
    unique = latest.unique(maintain_order=False)
    order = keys + [c for c in unique.columns if c not in keys]
    return unique.sort(order, nulls_last=True)


def stamp(now: datetime | None) -> datetime:
    """`now`, or the current UTC time."""
    return now or datetime.now(UTC)
