"""Decoded JSON pages → bronze frames (`models.bronze.bronze_schema`), column-wise.

Rows stay as the exchange sent them (strings stay strings); only the provenance columns are
added. Positional rows (klines, candles) are transposed with `zip(*rows)` and each column is
built as one strictly typed Series: about 1.2-1.5x faster than
`pl.DataFrame(rows, orient="row")` on recorded pages, and a value of the wrong JSON type is an
error instead of a silent cast. The exception is a number field (Coinbase candles, the only raw
floats): a value there that is not a number becomes NaN, so silver quarantines its row as the
other exchanges' unparsable strings are, instead of the page failing. Constant columns
(provenance, `constants`) are one typed value repeated by Polars, never a Python list of the
page's length.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import orjson
import polars as pl

from models.bronze import PROVENANCE, RAW_FIELDS, UTC_MS, bronze_schema
from models.enums import Dataset, Exchange

_bronze_schema = cache(bronze_schema)  # built once per (exchange, dataset), not per page


class DecodeError(ValueError):
    """A page does not have the documented shape (wrong arity, types or envelope)."""


@dataclass(frozen=True)
class Provenance:
    """Where a frame's rows came from; times in epoch milliseconds."""

    exchange: Exchange
    symbol: str | None
    native_symbol: str | None
    interval: str | None
    window_start: int | None
    window_end: int | None
    fetched_at: int

    def columns(self) -> dict[str, Any]:
        """The provenance column values (the exchange by name)."""
        return {
            "exchange": self.exchange.value,
            "symbol": self.symbol,
            "native_symbol": self.native_symbol,
            "interval": self.interval,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "fetched_at": self.fetched_at,
        }


def _provenance_block(prov: Provenance, height: int) -> pl.DataFrame:
    """The provenance columns of `prov`, `height` rows: sliced from a block built once per
    `Provenance` (every page of a symbol's day shares one), not rebuilt for each page."""
    block = _PROVENANCE_BLOCKS.get(prov)
    if block is None or block.height < height:
        block = _build_provenance(prov, max(height, _PROVENANCE_ROWS))
        if len(_PROVENANCE_BLOCKS) >= _PROVENANCE_KEEP:
            _PROVENANCE_BLOCKS.clear()
        _PROVENANCE_BLOCKS[prov] = block
    return block.head(height)


# Blocks of provenance columns by `Provenance`: a block serves every page of a symbol's day
# (pages are at most 1,000 rows). Bounded: cleared when this many are held.
_PROVENANCE_ROWS = 1_500
_PROVENANCE_KEEP = 512
_PROVENANCE_BLOCKS: dict[Provenance, pl.DataFrame] = {}


def _build_provenance(prov: Provenance, height: int) -> pl.DataFrame:
    values = prov.columns()
    columns = []
    for name, dtype in PROVENANCE.items():
        if dtype == UTC_MS:  # epoch milliseconds
            one = pl.Series(name, [values[name]], dtype=pl.Int64).cast(UTC_MS)
        else:
            one = pl.Series(name, [values[name]], dtype=dtype)
        columns.append(one.new_from_index(0, height))
    return pl.DataFrame(columns)


def _typed(name: str, values: Sequence[Any], dtype: pl.DataType) -> pl.Series:
    try:
        return pl.Series(name, values, dtype=dtype, strict=True)
    except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError) as exc:
        if dtype == pl.Float64():
            return pl.Series(name, [_number(name, v) for v in values], dtype=dtype)
        raise DecodeError(f"field {name!r} is not {dtype}: {exc}") from None


def _number(name: str, value: Any) -> float | None:
    """One value of a number field (Coinbase candles) as a float, so that one bad value costs
    its row, not the page: numbers and numeric strings as they read, any other string NaN
    (validation quarantines the row as not finite). A non-scalar is the page's shape error."""
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return None if value is None else float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return math.nan
    raise DecodeError(f"field {name!r} is not a number: {value!r}")


def _constant(name: str, value: Any, dtype: pl.DataType, height: int) -> pl.Series:
    """`value` as a column of `height` rows, typed as strictly as the fields sent."""
    return _typed(name, [value], dtype).new_from_index(0, height)


def _assemble(prov: Provenance, dataset: Dataset, raw: list[pl.Series]) -> pl.DataFrame:
    height = raw[0].len() if raw else 0
    frame = _provenance_block(prov, height).hstack(raw)
    expected = _bronze_schema(prov.exchange, dataset)
    if frame.schema != expected:  # pragma: no cover - guarded by construction
        raise DecodeError(f"frame schema {frame.schema} != bronze schema {expected}")
    return frame


def rows_frame(
    rows: Sequence[Sequence[Any]],
    dataset: Dataset,
    prov: Provenance,
    *,
    arity: int | None = None,
    constants: Mapping[str, Any] | None = None,
) -> pl.DataFrame:
    """Frame from positional rows (klines, candles, rubik arrays) in the documented order.

    `arity` is the number of fields the exchange sends (defaults to the raw schema's width
    without `source`);
    the remaining raw fields are filled from `constants` (e.g. source="history").
    """
    fields = RAW_FIELDS[(prov.exchange, dataset)]
    # `source` is never sent by an exchange (it is where the rows came from): a constant.
    width = arity if arity is not None else len([n for n in fields if n != "source"])
    names = list(fields)
    if not isinstance(rows, list) or (rows and not isinstance(rows[0], list)):
        raise DecodeError(f"expected a list of {width}-field arrays")
    try:
        # zip(strict=True) refuses rows of unequal length; the width check catches the rest.
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in range(width)]
    except (TypeError, ValueError):
        raise DecodeError(f"expected a list of {width}-field arrays") from None
    if len(columns) != width:
        raise DecodeError(f"expected {width}-field arrays, got {len(columns)} fields")
    constants = constants or {}
    raw = [_typed(n, columns[i], fields[n]) for i, n in enumerate(names[:width])]
    raw += [_constant(n, constants.get(n), fields[n], len(rows)) for n in names[width:]]
    return _assemble(prov, dataset, raw)


def objects_frame(
    objects: Sequence[Mapping[str, Any]],
    dataset: Dataset,
    prov: Provenance,
    *,
    rename: Mapping[str, str] | None = None,
    constants: Mapping[str, Any] | None = None,
) -> pl.DataFrame:
    """Frame from JSON objects, keeping the raw fields named in the bronze schema.

    `rename` maps bronze field → source key (e.g. timestamp ← time); `constants` fills fields
    the exchange does not send (e.g. source="history"). Absent keys become nulls.
    """
    if not isinstance(objects, list) or any(not isinstance(o, dict) for o in objects):
        raise DecodeError("expected a list of JSON objects")
    fields = RAW_FIELDS[(prov.exchange, dataset)]
    rename = rename or {}
    constants = constants or {}
    raw = []
    for name, dtype in fields.items():
        if name in constants:
            raw.append(_constant(name, constants[name], dtype, len(objects)))
            continue
        key = rename.get(name, name)
        values = [o.get(key) for o in objects]
        if dtype == pl.Int64() and any(isinstance(v, str) for v in values):
            values = [_int_or_raise(name, v) for v in values]
        raw.append(_typed(name, values, dtype))
    return _assemble(prov, dataset, raw)


def _int_or_raise(name: str, value: Any) -> int | None:
    """Integers sent as strings (Binance prints `timestamp` either way) become integers."""
    if value is None or isinstance(value, int):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DecodeError(f"field {name!r} is not an integer: {value!r}") from None


def empty_frame(exchange: Exchange, dataset: Dataset) -> pl.DataFrame:
    return pl.DataFrame(schema=_bronze_schema(exchange, dataset))


@dataclass(frozen=True)
class Listing:
    """One instrument as decoded from an exchange's metadata."""

    symbol: str
    native_symbol: str
    base: str
    quote: str
    kind: str
    status: str
    raw: Mapping[str, Any]


def instruments_frame(
    exchange: Exchange, listings: Sequence[Listing], fetched_at: int
) -> pl.DataFrame:
    """Bronze instruments frame: one row per listing, the exchange's object kept as JSON."""

    height = len(listings)
    data: dict[str, list[Any]] = {
        "exchange": [exchange.value] * height,
        "symbol": [x.symbol for x in listings],
        "native_symbol": [x.native_symbol for x in listings],
        "interval": [None] * height,
        "window_start": [None] * height,
        "window_end": [None] * height,
        "fetched_at": [fetched_at] * height,
        "base": [x.base for x in listings],
        "quote": [x.quote for x in listings],
        "kind": [x.kind for x in listings],
        "status": [x.status for x in listings],
        "raw": [orjson.dumps(x.raw).decode() for x in listings],
    }
    schema = bronze_schema(exchange, Dataset.INSTRUMENTS)
    columns = [
        pl.Series(n, data[n], dtype=pl.Int64).cast(dtype)
        if dtype == UTC_MS
        else pl.Series(n, data[n], dtype=dtype)
        for n, dtype in schema.items()
    ]
    return pl.DataFrame(columns)


def window_filter(frame: pl.DataFrame, column: str, start: int, end: int) -> pl.DataFrame:
    """Rows whose integer-ms (or numeric-string) `column` lies in [start, end), ascending.

    An exact repeat of a row (pages that overlap) is kept once. Rows that share the key but
    differ are all kept, in page order: which copy is right cannot be told here, and silver
    quarantines every copy as a conflicting duplicate (`tasks.transform.validate`).
    """
    series = frame.get_column(column)
    if series.dtype == pl.Int64() and series.null_count() == 0 and _strictly_increasing(series):
        # Already ascending with distinct keys (one archive file's slice, one page): no row
        # repeats, nothing to sort; the window is a slice found by binary search.
        lo, hi = np.searchsorted(series.to_numpy(), [start, end], side="left")
        return frame.slice(int(lo), max(0, int(hi) - int(lo)))
    key = pl.col(column).cast(pl.Int64)
    return (
        frame.lazy()
        .filter((key >= start) & (key < end))
        .unique(maintain_order=True)
        .sort(key, maintain_order=True)
        .collect(engine="in-memory")
    )


def _strictly_increasing(series: pl.Series) -> bool:
    values = series.to_numpy()
    return values.size < 2 or bool((values[1:] > values[:-1]).all())


def concat(frames: Sequence[pl.DataFrame], exchange: Exchange, dataset: Dataset) -> pl.DataFrame:
    """Pages stacked into one frame (the empty bronze frame when there are none)."""
    frames = [f for f in frames if f.height]
    return pl.concat(frames, how="vertical") if frames else empty_frame(exchange, dataset)
