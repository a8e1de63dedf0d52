"""Helpers shared by the silver transforms: timestamp parsing, schema conforming, dedup."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import polars as pl

from models.silver import QUARANTINE_REASON, SILVER_SCHEMAS

UTC_MS = pl.Datetime("ms", "UTC")
FETCHED_AT = "fetched_at"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


def collect(query: pl.LazyFrame) -> pl.DataFrame:
    """Run `query` on the in-memory engine, as eager operations do.

    A partition is a few thousand rows: the streaming engine, `collect()`'s default, takes
    longer to start than these queries take to run.
    """
    return query.collect(engine="in-memory")


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


def conform(df: Frame, schema: pl.Schema) -> Frame:
    """Select `schema`'s columns in order with its dtypes; absent columns become null.

    Only columns of another dtype are cast; a frame already in `schema` comes back as is.
    """
    have = df.collect_schema()
    if have == schema:
        return df
    return df.select(
        [
            pl.lit(None, dtype).alias(name)
            if name not in have
            else pl.col(name)
            if have[name] == dtype
            else pl.col(name).cast(dtype)
            for name, dtype in schema.items()
        ]
    )


def shares_key(keys: Sequence[str]) -> pl.Expr:
    """On rows sorted by `keys` (as `dedup_latest` leaves them): whether a neighbour has the
    row's key, nulls equal. Equals `pl.len().over(keys) > 1` without hashing the keys."""
    run = pl.struct(keys).rle_id()
    return ((run == run.shift(1)) | (run == run.shift(-1))).fill_null(False)


def dedup_latest_keyed(df: pl.DataFrame, keys: Sequence[str]) -> tuple[pl.DataFrame, bool]:
    """`dedup_latest(df, keys)`, and whether every key of the result is distinct (found on
    the way when no row had to go: the usual case; False means "not known")."""
    keys = list(keys)
    if df.is_empty():
        return df, True
    by_key = df.sort(keys, nulls_last=True)
    if by_key.select(pl.struct(keys).rle_id().max()).item() == len(by_key) - 1:
        return by_key, True  # every key once (the usual case): nothing to drop, no ties to order
    latest = df
    if FETCHED_AT in df.columns:
        fetched = pl.col(FETCHED_AT).fill_null(pl.lit(0).cast(UTC_MS))
        has_null_key = pl.any_horizontal([pl.col(k).is_null() for k in keys])
        latest = df.filter(has_null_key | (fetched == fetched.max().over(keys)))
    unique = latest.unique(maintain_order=False)
    order = keys + [c for c in unique.columns if c not in keys]
    return unique.sort(order, nulls_last=True), False


def dedup_latest(df: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    """Keep, per key, the rows of the latest `fetched_at`; exact repeats collapse to one.

    Rows of the latest fetch that still share a key but differ in content are all kept so
    that validation can quarantine them as "conflicting duplicate key". Rows with a null key pass
    through untouched (validation rejects them). A null `fetched_at` counts as the oldest;
    without a `fetched_at` column only exact repeats collapse. Idempotent and independent
    of the input row order (the output is sorted by the keys, then the other columns).
    """
    return dedup_latest_keyed(df, keys)[0]


def stamp(now: datetime | None) -> datetime:
    """`now`, or the current UTC time."""
    return now or datetime.now(UTC)


def utc_ms_lit(value: datetime) -> pl.Expr:
    """`pl.lit(value).cast(UTC_MS)` (a naive `value` taken as UTC) at a fraction of the cost:
    `pl.lit` of a datetime builds a Series and runs a query."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    micros = (aware - _EPOCH) // _MICROSECOND
    return pl.lit(micros, pl.Int64).cast(pl.Datetime("us", "UTC")).cast(UTC_MS)
