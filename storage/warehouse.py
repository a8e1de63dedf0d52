"""The warehouse: hive-partitioned Parquet under one URI, with guarded atomic writes.

Empty frames: a partition file always holds at least one row. Writing an empty frame where no
file exists writes nothing (rows=0, bytes=0); where a file exists and the write is allowed (open
day, or `force`), the file is removed, so "no file" always means "no data".
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from models.bronze import PROVENANCE
from models.enums import Layer
from models.settings import Settings
from models.silver import QUARANTINE_REASON, SILVER_SCHEMAS
from storage.coverage import CoverageIndex
from storage.fs import Store, open_location
from storage.layout import DATE_COLUMN, PartitionKey, dataset_dir, layer_of, parse_path
from storage.parquet import (
    arrow_table,
    encode,
    file_metadata,
    frame_dictionary_columns,
    our_metadata,
    partition_frame,
)


@dataclass
class WriteResult:
    key: PartitionKey
    path: str  # full URI of the file
    rows: int
    bytes: int
    previous_rows: int | None  # rows in the file this write replaced, None if there was none
    stamp: str | None = None  # the written file's stamp (`Store.stamps`); None: no file

    def stamp_records(self, records: pl.DataFrame) -> pl.DataFrame:
        """Coverage records of this partition marked with the stamp of the file just written."""
        return records.with_columns(pl.lit(self.stamp, pl.String()).alias("file_stamp"))


class ShrinkRefused(Exception):
    """A write would replace a closed day's file with fewer rows."""

    def __init__(self, key: PartitionKey, stored: int, offered: int) -> None:
        self.key = key
        self.stored = stored
        self.offered = offered
        super().__init__(
            f"refusing to shrink closed partition layer={key.layer.value} dataset={key.dataset} "
            f"exchange={key.exchange} interval={key.interval} day={key.day.isoformat()}: "
            f"{stored} rows stored, {offered} rows offered; --force (force=True) overrides"
        )


def expected_schema(layer: Layer, dataset: str) -> pl.Schema:
    """Schema of an empty scan: the silver contract (plus `reason` for quarantine);
    bronze raw fields vary by exchange, so an empty bronze scan has the provenance columns."""
    if layer is Layer.BRONZE:
        base = dict(PROVENANCE)
    else:
        base = dict(SILVER_SCHEMAS[dataset])
        if layer is Layer.QUARANTINE:
            base[QUARANTINE_REASON] = pl.String()
    return pl.Schema({**base, DATE_COLUMN: pl.Date()})


class Warehouse:
    """Bronze/silver/quarantine Parquet on local disk or S3 (see `storage.fs`)."""

    def __init__(self, uri: str, env: Mapping[str, str] | None = None) -> None:
        """`env`: the AWS variables for an s3:// URI (default: the process environment)."""
        self._location = open_location(uri, env)
        self._store = Store(self._location)
        self.uri = self._location.uri

    @classmethod
    def from_settings(cls, settings: Settings) -> Warehouse:
        # the AWS variables of `.env` too (pydantic-settings reads it; the S3 clients only
        # look at the process environment), the settings' values winning
        return cls(settings.warehouse, {**os.environ, **settings.s3_env()})

    def __repr__(self) -> str:
        return f"Warehouse({self.uri!r})"

    @property
    def store(self) -> Store:
        return self._store

    @property
    def storage_options(self) -> dict[str, str] | None:
        """polars `storage_options` reaching this warehouse (None for local disk)."""
        return self._location.storage_options

    @cached_property
    def coverage(self) -> CoverageIndex:
        return CoverageIndex(self._store)

    def path(self, key: PartitionKey) -> str:
        """Full URI of a partition's file."""
        return self._store.uri(key.path)

    def write(
        self,
        key: PartitionKey,
        frame: pl.DataFrame,
        *,
        closed: bool,
        window: tuple[datetime, datetime] | None = None,
        force: bool = False,
    ) -> WriteResult:
        """Atomically replace the partition's file with `frame`.

        Raises `ShrinkRefused` (writing nothing) when `closed` and the stored file has more
        rows than `frame`, unless `force`. Raises ValueError if `frame` contradicts `key`.
        """
        frame = partition_frame(key, frame)
        table = arrow_table(frame)
        previous = self._previous_rows(key)
        if closed and not force and previous is not None and previous > table.num_rows:
            raise ShrinkRefused(key, previous, table.num_rows)
        if table.num_rows == 0:
            if previous is not None:
                self._store.delete(key.path)
            return WriteResult(key, self.path(key), 0, 0, previous)
        meta = file_metadata(key, table.num_rows, closed=closed, window=window)
        data = encode(table, meta, dictionary=frame_dictionary_columns(frame))
        self._store.put_bytes(key.path, data)
        stamp = self._store.stamps([key.path]).get(key.path)
        return WriteResult(key, self.path(key), table.num_rows, len(data), previous, stamp)

    def _previous_rows(self, key: PartitionKey) -> int | None:
        """Rows in the current file; a corrupt file counts as absent so it can be repaired."""
        try:
            return self.row_count(key)
        except pa.ArrowInvalid:
            return None

    def read(self, key: PartitionKey, columns: Sequence[str] | None = None) -> pl.DataFrame | None:
        """The partition's rows as stored (only `columns` if given), or None if there is no
        file."""
        try:
            with self._store.open_input(key.path) as handle:
                # ParquetFile.read, not read_table: the same table without read_table's import
                # of pandas (~0.2 s, paid by the first read of every process).
                table = pq.ParquetFile(handle).read(columns=list(columns) if columns else None)
        except FileNotFoundError:
            return None
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        return frame

    def row_count(self, key: PartitionKey) -> int | None:
        """Rows in the partition's file from its Parquet footer, or None if there is no file."""
        try:
            with self._store.open_input(key.path) as handle:
                return int(pq.ParquetFile(handle).metadata.num_rows)
        except FileNotFoundError:
            return None

    def metadata(self, key: PartitionKey) -> dict[str, str] | None:
        """The file's `crypto_pipeline.*` metadata (version, window, written_at, rows...)."""
        try:
            with self._store.open_input(key.path) as handle:
                return our_metadata(pq.ParquetFile(handle).metadata.metadata)
        except FileNotFoundError:
            return None

    def exists(self, key: PartitionKey) -> bool:
        return self._store.exists(key.path)

    def stamps(self, keys: Sequence[PartitionKey]) -> dict[PartitionKey, str]:
        """The current stamp of each key's file (`Store.stamps`); keys without a file left out."""
        paths = [k.path for k in keys]  # each key's path built once (a year: ~2k keys)
        by_path = self._store.stamps(paths)
        return {k: by_path[p] for k, p in zip(keys, paths, strict=True) if p in by_path}

    def dataset_path(self, layer: Layer | str, dataset: str) -> str:
        """URI of a dataset's directory, for polars/DuckDB/pyarrow with hive partitioning."""
        return self._store.uri(dataset_dir(layer, dataset))

    def list_keys(self, layer: Layer | str, dataset: str) -> list[PartitionKey]:
        """Every partition present for a dataset (one listing, no file opened)."""
        keys = (parse_path(rel) for rel in self._store.list_files(dataset_dir(layer, dataset)))
        return sorted(
            (k for k in keys if k is not None),
            key=lambda k: (k.exchange or "", k.interval or "", k.day),
        )

    def scan(self, layer: Layer | str, dataset: str) -> pl.LazyFrame:
        """Hive-partitioned lazy scan of a dataset (with a `date` column from the path).

        Files of different exchanges may differ in schema (bronze raw fields), so each
        exchange is scanned separately and the scans concatenated by column name.
        """
        layer = layer_of(layer)
        keys = self.list_keys(layer, dataset)
        if not keys:
            return pl.LazyFrame(schema=expected_schema(layer, dataset))
        groups: dict[str | None, list[str]] = {}
        for key in keys:
            groups.setdefault(key.exchange, []).append(self.path(key))
        scans = [
            pl.scan_parquet(
                paths,
                hive_partitioning=True,
                storage_options=self.storage_options,
            )
            for paths in groups.values()
        ]
        return scans[0] if len(scans) == 1 else pl.concat(scans, how="diagonal_relaxed")

    def validate(self, key: PartitionKey) -> str | None:
        """None if the partition's file reads back completely and matches its key; else why not."""
        uri = self.path(key)
        try:
            with self._store.open_input(key.path) as handle:
                parquet = pq.ParquetFile(handle, page_checksum_verification=True)
                table = parquet.read()
                footer_rows = parquet.metadata.num_rows
        except FileNotFoundError:
            return f"missing: no file at {uri}"
        except (pa.ArrowException, OSError, ValueError) as exc:
            return f"unreadable Parquet at {uri}: {exc}"
        if table.num_rows != footer_rows:
            return f"{uri}: read {table.num_rows} rows but the footer says {footer_rows}"
        if table.num_rows == 0:
            return f"{uri}: file holds no rows"
        for column, value in key.partition_values.items():
            if column not in table.column_names:
                return f"{uri}: partition column {column!r} missing from the file"
            values = set(table.column(column).unique().to_pylist())
            if values != {value}:
                return f"{uri}: column {column!r} holds {sorted(map(str, values))}, not {value!r}"
        if key.layer is Layer.SILVER:
            actual = pl.from_arrow(table)
            assert isinstance(actual, pl.DataFrame)
            return _schema_problem(uri, actual.schema, SILVER_SCHEMAS[key.dataset])
        return None


def _schema_problem(uri: str, actual: pl.Schema, expected: pl.Schema) -> str | None:
    missing = [c for c in expected if c not in actual]
    if missing:
        return f"{uri}: columns {missing} missing"
    for column, dtype in expected.items():
        if actual[column] != dtype:
            return f"{uri}: column {column!r} is {actual[column]}, expected {dtype}"
    return None
