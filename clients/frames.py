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
from itertools import chain
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
    page = rows_page(rows, dataset, prov.exchange, arity=arity)
    return pages_frame([page], dataset, prov, constants=constants)


@dataclass(frozen=True)
class RowsPage:
    """One page of positional rows, checked (arity, JSON types) and transposed, not yet a
    frame: a symbol's pages become one frame together (`pages_frame`). Building a frame costs
    ~0.1 ms per call whatever its length (Polars' constructors, per column), as much as
    typing ~300 candles: once per symbol-day instead of once per page."""

    names: tuple[str, ...]  # the fields sent, in order
    dtypes: tuple[pl.DataType, ...]  # their bronze types
    columns: tuple[Sequence[Any], ...]
    height: int

    def timestamps(self, column: str) -> list[int]:
        """The values of `column` as integers (for the cursor), as a cast to Int64 reads
        them (numeric strings too)."""
        i = self.names.index(column)
        values = self.columns[i]
        if all(type(v) is int for v in values):
            return list(values)
        typed = pl.Series(column, values, dtype=self.dtypes[i], strict=False)
        return typed.cast(pl.Int64).to_list()


def rows_page(
    rows: Sequence[Sequence[Any]],
    dataset: Dataset,
    exchange: Exchange,
    *,
    arity: int | None = None,
) -> RowsPage:
    """A page of positional rows checked as `rows_frame` checks it (`DecodeError` on a wrong
    arity or a value of the wrong JSON type), without building its frame."""
    fields = RAW_FIELDS[(exchange, dataset)]
    # `source` is never sent by an exchange (it is where the rows came from): a constant.
    width = arity if arity is not None else len([n for n in fields if n != "source"])
    names = tuple(fields)[:width]
    if not isinstance(rows, list) or (rows and not isinstance(rows[0], list)):
        raise DecodeError(f"expected a list of {width}-field arrays")
    try:
        # zip(strict=True) refuses rows of unequal length; the width check catches the rest.
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in range(width)]
    except (TypeError, ValueError):
        raise DecodeError(f"expected a list of {width}-field arrays") from None
    if len(columns) != width:
        raise DecodeError(f"expected {width}-field arrays, got {len(columns)} fields")
    checked = [_checked(n, c, fields[n]) for n, c in zip(names, columns, strict=True)]
    dtypes = tuple(fields[n] for n in names)
    return RowsPage(names, dtypes, tuple(checked), len(rows))


_NONE = type(None)
# The JSON types a strict Polars Series of each dtype takes (bool is an int to Polars).
_STRICT_TYPES: dict[pl.DataType, frozenset[type]] = {
    pl.String(): frozenset({str, _NONE}),
    pl.Int64(): frozenset({int, bool, _NONE}),
    pl.Float64(): frozenset({float, int, bool, _NONE}),
}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _checked(name: str, values: Sequence[Any], dtype: pl.DataType) -> Sequence[Any]:
    """`values` if a strict Series of `dtype` takes them (what `_typed` would accept); a
    number field's values that are not all numbers as `_number` reads them; else
    `DecodeError`. One pass over the types at C speed, no Series built."""
    kinds = set(map(type, values))
    allowed = _STRICT_TYPES.get(dtype)
    if allowed is None:  # pragma: no cover - every raw positional field is one of the three
        _typed(name, values, dtype)
        return values
    number = dtype == pl.Float64()
    if kinds <= allowed:
        if int in kinds:
            ints = [v for v in values if v is not None] if _NONE in kinds else values
            if min(ints) < _INT64_MIN or max(ints) > _INT64_MAX:
                if number:  # as `_typed` reads them when the strict build refuses
                    return [_number(name, v) for v in values]
                raise DecodeError(f"field {name!r} is not {dtype}: integer out of range")
        return values
    if number:
        return [_number(name, v) for v in values]
    found = sorted(k.__name__ for k in kinds - allowed)
    raise DecodeError(f"field {name!r} is not {dtype}: found {', '.join(found)}")


def pages_frame(
    pages: Sequence[RowsPage],
    dataset: Dataset,
    prov: Provenance,
    *,
    constants: Mapping[str, Any] | None = None,
) -> pl.DataFrame:
    """One frame of `pages` (checked by `rows_page`), in page order: the frame `concat` of
    each page's `rows_frame` would give. Each column is built once, from the pages' values
    (already checked: the strict build cannot fail, so it is not asked for)."""
    fields = RAW_FIELDS[(prov.exchange, dataset)]
    names = list(fields)
    width = len(pages[0].names) if pages else len([n for n in fields if n != "source"])
    height = sum(p.height for p in pages)
    raw = []
    for i, name in enumerate(names[:width]):
        if len(pages) == 1:
            values: Sequence[Any] = pages[0].columns[i]
        else:
            values = list(chain.from_iterable(p.columns[i] for p in pages))
        raw.append(pl.Series(name, values, dtype=fields[name], strict=False))
    constants = constants or {}
    raw += [_constant(n, constants.get(n), fields[n], height) for n in names[width:]]
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


def window_filter(
    frame: pl.DataFrame, column: str, start: int, end: int, *, scale: int = 1
) -> pl.DataFrame:
    """Rows whose integer-ms (or numeric-string) `column` lies in [start, end), ascending.

    `scale` turns the column into milliseconds first (Coinbase candle times are seconds).
    An exact repeat of a row (pages that overlap) is kept once. Rows that share the key but
    differ are all kept, in page order: which copy is right cannot be told here, and silver
    quarantines every copy as a conflicting duplicate (`tasks.transform.validate`).
    """
    series = frame.get_column(column)
    if series.len() and series.null_count() == 0:
        # Distinct keys mean distinct rows: nothing to deduplicate, and the window of the
        # rows sorted by key is a slice found by binary search (a strict cast, as below).
        keys = series.cast(pl.Int64).to_numpy()
        if scale != 1:
            keys = keys * scale
        window = _distinct_window(keys, start, end)
        if isinstance(window, slice):
            return frame.slice(window.start, window.stop - window.start)
        if window is not None:
            return frame[window]
    key = pl.col(column).cast(pl.Int64)
    if scale != 1:
        key = key * scale
    return (
        frame.lazy()
        .filter((key >= start) & (key < end))
        .unique(maintain_order=True)
        .sort(key, maintain_order=True)
        .collect(engine="in-memory")
    )


def _distinct_window(keys: np.ndarray, start: int, end: int) -> slice | np.ndarray | None:
    """The rows of `keys` in [start, end) in ascending key order when the keys are distinct:
    a slice when they already ascend (one page, an archive file's slice), else row indices
    (pages received newest first, or out of order); None when some key repeats."""
    if keys.size < 2 or bool((keys[1:] > keys[:-1]).all()):
        lo, hi = np.searchsorted(keys, [start, end], side="left")
        return slice(int(lo), max(int(lo), int(hi)))
    if bool((keys[1:] < keys[:-1]).all()):  # newest first (OKX, Coinbase)
        order: np.ndarray = np.arange(keys.size - 1, -1, -1)
    else:
        order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    if not bool((ordered[1:] > ordered[:-1]).all()):
        return None
    lo, hi = np.searchsorted(ordered, [start, end], side="left")
    return order[int(lo) : max(int(lo), int(hi))]


def concat(frames: Sequence[pl.DataFrame], exchange: Exchange, dataset: Dataset) -> pl.DataFrame:
    """Pages stacked into one frame (the empty bronze frame when there are none)."""
    frames = [f for f in frames if f.height]
    return pl.concat(frames, how="vertical") if frames else empty_frame(exchange, dataset)
