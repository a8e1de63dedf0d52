"""Coverage index: which (layer, dataset, exchange, symbol, interval, day) exist, and how well.

Storage, under `{WAREHOUSE}/_coverage/` (outside every dataset directory):

- `fragments/{time_ns}-{uuid}.parquet`: each `upsert` publishes one new immutable fragment
  (atomically, like the data). Unique names mean concurrent writers never touch each other's
  files, on local disk or S3, without locks.
- `snapshots/{time_ns}-{uuid}.parquet`: `compact` merges every snapshot and fragment it sees
  into one new snapshot, then deletes exactly the files it merged. A file is deleted only after
  a snapshot holding its content is published, so concurrent compactions never lose a record
  (at worst two snapshots coexist until the next compaction).

Readers merge all snapshots and fragments present; per `COVERAGE_KEY` the record with the latest
`updated_at` wins (ties: the later file). Upserts compact automatically once more than
`compact_every` fragments accumulate, so a query reads a handful of files whatever the history
length (never one per partition); immutable files are cached by name between queries, in a
cache shared by every index of the same warehouse in the process (each task opens its own
`Warehouse`, so a per-instance cache would re-read the whole index once per partition).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import date, timedelta

import polars as pl

from models.coverage import COVERAGE_KEY, COVERAGE_SCHEMA, OPTIONAL_COLUMNS
from models.enums import Layer
from storage.fs import Store
from storage.parquet import decode, encode

COVERAGE_DIR = "_coverage"
FRAGMENTS_DIR = f"{COVERAGE_DIR}/fragments"
SNAPSHOTS_DIR = f"{COVERAGE_DIR}/snapshots"
COMPACT_EVERY = 64
_LOAD_ATTEMPTS = 40
_LOAD_FIRST_PAUSE_S = 0.005
_LOAD_MAX_PAUSE_S = 0.25


def with_optional_columns(records: pl.DataFrame) -> pl.DataFrame:
    """Records with every `OPTIONAL_COLUMNS` column present (null where absent)."""
    absent = [c for c in OPTIONAL_COLUMNS if c not in records.columns]
    if not absent:
        return records
    filled = records.with_columns(pl.lit(None, COVERAGE_SCHEMA[c]).alias(c) for c in absent)
    if set(COVERAGE_SCHEMA) <= set(filled.columns):  # keep the schema's column order
        return filled.select(
            *COVERAGE_SCHEMA, *(c for c in filled.columns if c not in COVERAGE_SCHEMA)
        )
    return filled


def normalize(records: pl.DataFrame) -> pl.DataFrame:
    """Coverage records in `COVERAGE_SCHEMA` column order and types; refuses incomplete keys."""
    records = with_optional_columns(records)
    missing = [c for c in COVERAGE_SCHEMA if c not in records.columns]
    if missing:
        raise ValueError(f"coverage records lack columns {missing}")
    out = records.select(
        pl.col(name).cast(dtype, strict=True) for name, dtype in COVERAGE_SCHEMA.items()
    )
    for column in (*(c for c in COVERAGE_KEY if c != "interval"), "updated_at"):
        nulls = out.get_column(column).null_count()
        if nulls:
            raise ValueError(f"coverage records: {nulls} rows with a null {column!r}")
    return out


def latest(records: pl.DataFrame) -> pl.DataFrame:
    """One record per key: the latest `updated_at`; among equals, the one that came last."""
    if records.is_empty():
        return records
    return records.sort("updated_at", maintain_order=True, nulls_last=False).unique(
        subset=list(COVERAGE_KEY), keep="last", maintain_order=False
    )


def overlay(base: pl.DataFrame, newer: pl.DataFrame) -> pl.DataFrame:
    """`base` (already one record per key) updated with `newer`, as `latest(base + newer)`.

    Only the keys `newer` touches are re-ranked, so a small overlay on a large snapshot is cheap.
    """
    if newer.is_empty():
        return base
    keys = newer.select(COVERAGE_KEY).unique()
    untouched = base.join(keys, on=list(COVERAGE_KEY), how="anti", nulls_equal=True)
    touched = base.join(keys, on=list(COVERAGE_KEY), how="semi", nulls_equal=True)
    return pl.concat([untouched, latest(pl.concat([touched, newer]))])


def merge_days(days: Iterable[date]) -> list[tuple[date, date]]:
    """Consecutive days merged into inclusive [start, end] ranges, in order."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if ranges and ranges[-1][1] + timedelta(days=1) == day:
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def summarize(records: pl.DataFrame) -> pl.DataFrame:
    """Coverage per (layer, dataset, exchange, symbol, interval), for reports."""
    gap_minutes = pl.col("gaps").list.eval(
        (pl.element().struct.field("end") - pl.element().struct.field("start")).dt.total_minutes()
    )
    group = ["layer", "dataset", "exchange", "symbol", "interval"]
    return (
        records.group_by(group)
        .agg(
            pl.len().alias("days"),
            pl.col("complete").sum().cast(pl.Int64).alias("complete_days"),
            (pl.col("unavailable").is_not_null() & ~pl.col("complete"))
            .sum()
            .cast(pl.Int64)
            .alias("unavailable_days"),
            pl.col("day").min().alias("first_day"),
            pl.col("day").max().alias("last_day"),
            pl.col("rows_present").sum().alias("rows_present"),
            pl.when(pl.col("rows_expected").count() > 0)
            .then(pl.col("rows_expected").sum())
            .alias("rows_expected"),
            pl.col("gaps").list.len().sum().cast(pl.Int64).alias("gap_count"),
            gap_minutes.list.sum().sum().cast(pl.Int64).alias("gap_minutes"),
            pl.col("quarantined").sum().alias("quarantined"),
        )
        .sort(group, nulls_last=False)
    )


def _merge(names: Sequence[str], frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """Current records from files listed snapshots first (see `CoverageIndex.files`)."""
    if not frames:
        return pl.DataFrame(schema=COVERAGE_SCHEMA)
    snapshots = sum(1 for n in names if n.startswith(SNAPSHOTS_DIR))
    if snapshots == 1:  # the usual case: one deduplicated snapshot plus a few fragments
        return overlay(frames[0], pl.concat(frames[1:]) if len(frames) > 1 else frames[0].clear())
    return latest(pl.concat(frames))


def _eq(column: str, value: object) -> pl.Expr:
    return pl.col(column) == pl.lit(str(value))


class _FileCache:
    """Decoded coverage files of one warehouse, by name (files are immutable, names unique)."""

    def __init__(self) -> None:
        self.files: dict[str, pl.DataFrame] = {}
        self.merged: tuple[tuple[str, ...], pl.DataFrame] | None = None


_CACHES: dict[str, _FileCache] = {}
_CACHES_LOCK = threading.Lock()


def _shared_cache(key: str) -> _FileCache:
    with _CACHES_LOCK:
        return _CACHES.setdefault(key, _FileCache())


class CoverageIndex:
    """The coverage records of one warehouse (see module docstring for the storage scheme)."""

    def __init__(self, store: Store, *, compact_every: int = COMPACT_EVERY) -> None:
        self._store = store
        self.compact_every = compact_every
        self._cache = _shared_cache(store.uri(COVERAGE_DIR))

    def upsert(self, records: pl.DataFrame) -> None:
        """Publish records (latest `updated_at` wins per key); compacts when fragments pile up."""
        rows = latest(normalize(records))
        if rows.is_empty():
            return
        name = f"{FRAGMENTS_DIR}/{time.time_ns():020d}-{uuid.uuid4().hex}.parquet"
        self._store.put_bytes(name, encode(rows.to_arrow()))
        self._cache.files[name] = rows
        if len(self._store.list_files(FRAGMENTS_DIR)) > self.compact_every:
            self.compact()

    def records(self) -> pl.DataFrame:
        """Every current record (one per key)."""
        return self._load()[1]

    def query(
        self,
        *,
        layer: Layer | str | None = None,
        dataset: str | None = None,
        exchange: str | None = None,
        symbol: str | None = None,
        interval: str | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> pl.DataFrame:
        """Current records matching every given filter (None = any; days inclusive), key order."""
        filters = [
            _eq(column, value)
            for column, value in (
                ("layer", layer),
                ("dataset", dataset),
                ("exchange", exchange),
                ("symbol", symbol),
                ("interval", interval),
            )
            if value is not None
        ]
        if start is not None:
            filters.append(pl.col("day") >= start)
        if end is not None:
            filters.append(pl.col("day") <= end)
        query = self.records().lazy()  # filter and sort in one query
        if filters:
            query = query.filter(*filters)
        return query.sort(list(COVERAGE_KEY), nulls_last=False).collect()

    def compact(self) -> None:
        """Merge all snapshots and fragments into one snapshot, then delete what was merged."""
        names, merged = self._load()
        fragments = [n for n in names if n.startswith(FRAGMENTS_DIR)]
        if len(names) <= 1 and not fragments:
            return
        name = f"{SNAPSHOTS_DIR}/{time.time_ns():020d}-{uuid.uuid4().hex}.parquet"
        merged = merged.sort(list(COVERAGE_KEY), nulls_last=False)
        self._store.put_bytes(name, encode(merged.to_arrow()))
        self._cache.files[name] = merged
        for old in names:
            self._store.delete(old)
            self._cache.files.pop(old, None)
        self._cache.merged = ((name,), merged)

    def files(self) -> list[str]:
        """Snapshot and fragment paths, snapshots first, each group oldest first."""
        return self._store.list_files(SNAPSHOTS_DIR) + self._store.list_files(FRAGMENTS_DIR)

    def _load(self) -> tuple[tuple[str, ...], pl.DataFrame]:
        """All files and their merged records.

        A concurrent compaction (another process) may delete a listed file before it is read:
        its content is then in a snapshot published before the deletion, so the index is
        listed again after a short pause. Files read so far stay cached (they are immutable),
        so each retry reads only what is new and the race window shrinks to one listing.
        """
        pause = _LOAD_FIRST_PAUSE_S
        for _ in range(_LOAD_ATTEMPTS):
            try:
                names = tuple(self.files())
                cached = self._cache.merged
                if cached is not None and cached[0] == names:
                    return cached
                merged = self._extend(cached, names)
                if merged is None:
                    frames = [self._read(name) for name in names]
                    merged = _merge(names, frames)
                    self._cache.files = dict(zip(names, frames, strict=True))
            except FileNotFoundError:
                time.sleep(pause)
                pause = min(pause * 2, _LOAD_MAX_PAUSE_S)
                continue
            self._cache.merged = (names, merged)
            return names, merged
        raise RuntimeError(
            f"coverage index at {self._store.uri(COVERAGE_DIR)} kept changing while being read"
        )

    def _extend(
        self, cached: tuple[tuple[str, ...], pl.DataFrame] | None, names: tuple[str, ...]
    ) -> pl.DataFrame | None:
        """The cached merge overlaid with fragments published since, when that is all that
        changed (every cached file still there, every new one a fragment named after them, so
        the order a full merge would use is kept); else None."""
        if cached is None or not cached[0]:
            return None
        old_names, merged = cached
        old = set(old_names)
        if not old <= set(names):
            return None
        new = [n for n in names if n not in old]
        if not new or any(not n.startswith(FRAGMENTS_DIR) for n in new):
            return None
        seen = [n for n in old_names if n.startswith(FRAGMENTS_DIR)]
        if seen and min(new) < max(seen):
            return None
        frames = [self._read(name) for name in new]
        return overlay(merged, latest(pl.concat(frames)))

    def _read(self, name: str) -> pl.DataFrame:
        """One coverage file, decoded once per process (names are unique, files immutable)."""
        cached = self._cache.files.get(name)
        if cached is None:
            cached = with_optional_columns(decode(self._store.read_bytes(name)))
            self._cache.files[name] = cached
        return cached
