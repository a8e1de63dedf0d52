"""Silver frames → the published layout `data/{config}/{period}.parquet`, one file at a time.

Beside the data, `LICENSE.md` names the exchanges' terms (`tasks.publish.licence`).
Configs are `ohlcv_{interval}`, `ohlcv_aggregated_{interval}`, `funding`, `open_interest` and
`instruments`. Intervals under one hour get monthly files, the rest yearly ones, instruments a
single file. Files are sorted by (symbol, exchange, ts), carry every partition value as a column,
share one Arrow schema per config and are written deterministically (same rows → same bytes).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from polars.datatypes import DataTypeClass

from models.errors import InputError
from models.silver import SILVER_KEYS, SILVER_SCHEMAS
from tasks.publish.licence import LICENCE_PATH, render_licence
from tasks.publish.manifest import (
    ConfigStats,
    Manifest,
    ManifestFile,
    PublishError,
    manifest_entry,
)

Granularity = Literal["month", "year", "single"]
PolarsType = pl.DataType | DataTypeClass

DATASETS_WITH_INTERVAL = ("ohlcv", "ohlcv_aggregated")
INTERVAL_ORDER = ("1m", "5m", "15m", "1h", "4h", "1d")
MONTHLY_INTERVALS = frozenset({"1m", "5m", "15m"})
SORT_PREFIX = ("symbol", "exchange", "ts")
ROW_GROUP_TARGET_BYTES = 64 * 1024 * 1024
MAX_ROW_GROUP_ROWS = 1_000_000
MAX_FILES_PER_FOLDER = 10_000
ZSTD_LEVEL = 6


@dataclass(frozen=True)
class FileSpec:
    """One output file: which slice of which silver dataset goes where."""

    dataset: str
    interval: str | None
    granularity: Granularity
    start: datetime | None
    end: datetime | None

    @property
    def config(self) -> str:
        return config_name(self.dataset, self.interval)

    @property
    def repo_path(self) -> str:
        if self.start is None:
            stem = self.dataset
        elif self.granularity == "month":
            stem = f"{self.start:%Y-%m}"
        else:
            stem = f"{self.start:%Y}"
        return f"data/{self.config}/{stem}.parquet"


def config_name(dataset: str, interval: str | None) -> str:
    return f"{dataset}_{interval}" if interval else dataset


def granularity(dataset: str, interval: str | None) -> Granularity:
    if dataset == "instruments":
        return "single"
    return "month" if interval in MONTHLY_INTERVALS else "year"


def sort_columns(dataset: str) -> list[str]:
    """(symbol, exchange, ts) where present, then the rest of the dataset's unique key."""
    schema = SILVER_SCHEMAS[dataset]
    first = [c for c in SORT_PREFIX if c in schema]
    return first + [c for c in SILVER_KEYS[dataset] if c not in first]


def arrow_type(dtype: PolarsType) -> pa.DataType:
    """Plain (non-large, non-view) Arrow types, the most widely readable ones."""
    if isinstance(dtype, pl.Datetime):
        return pa.timestamp(dtype.time_unit, tz=dtype.time_zone)
    if isinstance(dtype, pl.List):
        return pa.list_(arrow_type(dtype.inner))
    simple = {
        pl.String(): pa.string(),
        pl.Float64(): pa.float64(),
        pl.Int64(): pa.int64(),
        pl.Boolean(): pa.bool_(),
        pl.Date(): pa.date32(),
    }
    for polars_type, arrow in simple.items():
        if dtype == polars_type:
            return arrow
    raise InputError(f"no Arrow type mapping for polars type {dtype}")


def arrow_schema(dataset: str) -> pa.Schema:
    return pa.schema([(name, arrow_type(dt)) for name, dt in SILVER_SCHEMAS[dataset].items()])


def type_name(dtype: PolarsType) -> str:
    """Human type name for the card: string, float64, int64, timestamp[ms, UTC], list<string>."""
    if isinstance(dtype, pl.Datetime):
        return f"timestamp[{dtype.time_unit}, {dtype.time_zone}]"
    if isinstance(dtype, pl.List):
        return f"list<{type_name(dtype.inner)}>"
    return str(dtype).lower()


def conform(dataset: str, frame: pl.LazyFrame) -> pl.LazyFrame:
    """Exactly the silver schema's columns, cast to it; refuses frames missing a column."""
    schema = SILVER_SCHEMAS[dataset]
    present = frame.collect_schema()
    missing = [c for c in schema if c not in present]
    if missing:
        raise InputError(f"silver {dataset!r} is missing column(s) {', '.join(missing)}")
    return frame.select([pl.col(name).cast(dtype) for name, dtype in schema.items()])


def plan_files(dataset: str, frame: pl.LazyFrame) -> list[FileSpec]:
    """The files a conformed silver frame splits into, found with one narrow scan."""
    if dataset == "instruments":
        has_rows = frame.select(pl.len()).collect().item() > 0
        return [FileSpec(dataset, None, "single", None, None)] if has_rows else []
    interval = pl.col("interval") if dataset in DATASETS_WITH_INTERVAL else pl.lit(None, pl.String)
    periods = (
        frame.select(interval.alias("interval"), pl.col("ts"))
        .drop_nulls("ts")
        .with_columns(
            pl.when(pl.col("interval").is_in(list(MONTHLY_INTERVALS)))
            .then(pl.col("ts").dt.truncate("1mo"))
            .otherwise(pl.col("ts").dt.truncate("1y"))
            .alias("start")
        )
        .select("interval", "start")
        .unique()
        .collect(engine="streaming")
        .sort("interval", "start")
    )
    specs: list[FileSpec] = []
    for iv, start in periods.iter_rows():
        if iv is not None and iv not in INTERVAL_ORDER:
            raise InputError(f"silver {dataset!r} has unknown interval {iv!r}")
        grain = granularity(dataset, iv)
        end = _add_months(start, 1 if grain == "month" else 12)
        specs.append(FileSpec(dataset, iv, grain, start, end))
    return sorted(specs, key=lambda s: (_interval_rank(s.interval), s.repo_path))


def file_rows(frame: pl.LazyFrame, spec: FileSpec) -> pl.DataFrame:
    """The sorted rows of one output file."""
    selected = frame
    if spec.interval is not None:
        selected = selected.filter(pl.col("interval") == spec.interval)
    if spec.start is not None and spec.end is not None:
        selected = selected.filter((pl.col("ts") >= spec.start) & (pl.col("ts") < spec.end))
    order = sort_columns(spec.dataset)
    rows = selected.sort(order).collect()
    # The sort covers the whole unique key, so duplicates would sit next to each other.
    repeated = pl.all_horizontal([pl.col(c) == pl.col(c).shift() for c in order]).any()
    if rows.height and rows.select(repeated).item():
        key = SILVER_KEYS[spec.dataset]
        raise InputError(f"silver {spec.dataset!r} has duplicate {key} rows in {spec.repo_path}")
    return rows


def write_parquet(rows: pl.DataFrame, path: Path, dataset: str) -> None:
    """Deterministic zstd Parquet with content-defined chunking and a page index, atomically."""
    schema = arrow_schema(dataset)
    table = rows.to_arrow().cast(schema)
    per_row = max(1, rows.estimated_size() // max(rows.height, 1))
    row_group_rows = max(1, min(MAX_ROW_GROUP_ROWS, ROW_GROUP_TARGET_BYTES // per_row))
    sorting = pq.SortingColumn.from_ordering(
        schema, [(c, "ascending") for c in sort_columns(dataset)]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(
        table,
        tmp,
        row_group_size=row_group_rows,
        compression="zstd",
        compression_level=ZSTD_LEVEL,
        use_content_defined_chunking=True,
        write_page_index=True,
        sorting_columns=sorting,
    )
    os.replace(tmp, path)


def build_layout(
    silver: Mapping[str, pl.LazyFrame], staging_dir: Path, *, source: str | None = None
) -> Manifest:
    """Write every config of `silver` under `staging_dir/data/`, one file in memory at a time.

    Refuses (`PublishError`) when no dataset has a row: an empty or missing warehouse (named by
    `source`) is an error, never an empty dataset.
    """
    unknown = sorted(set(silver) - set(SILVER_SCHEMAS))
    if unknown:
        raise InputError(f"unknown silver dataset(s) {', '.join(unknown)}")
    files: list[ManifestFile] = []
    stats: list[ConfigStats] = []
    for dataset in SILVER_SCHEMAS:
        if dataset not in silver:
            continue
        frame = conform(dataset, silver[dataset])
        by_config: dict[str, list[tuple[ManifestFile, pl.DataFrame]]] = {}
        for spec, entry, summary in _write_files(frame, dataset, staging_dir):
            by_config.setdefault(spec.config, []).append((entry, summary))
        for config, written in by_config.items():
            if len(written) > MAX_FILES_PER_FOLDER:
                raise InputError(f"config {config!r} would hold {len(written)} files (max 10000)")
            files.extend(entry for entry, _ in written)
            stats.append(_config_stats(config, dataset, written))
    if not files:
        where = f"silver warehouse {source}" if source else "the silver warehouse"
        raise PublishError(
            f"nothing to publish: {where} has no rows in any of "
            f"{', '.join(sorted(silver)) or 'its datasets'} (is it the right path, and has "
            "silver been built?)"
        )
    _remove_stale(staging_dir, {f.repo_path for f in files})
    files.append(_write_licence(staging_dir, stats))
    return Manifest(files=tuple(sorted(files, key=lambda f: f.repo_path)), configs=tuple(stats))


def _write_licence(staging_dir: Path, stats: list[ConfigStats]) -> ManifestFile:
    """`LICENSE.md`: the terms of every exchange in the build (the card's `license_link`)."""
    path = staging_dir / LICENCE_PATH
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_licence(e for c in stats for e in c.exchanges), encoding="utf-8")
    os.replace(tmp, path)
    return manifest_entry(staging_dir, LICENCE_PATH, rows=None, config=None)


def _write_files(
    frame: pl.LazyFrame, dataset: str, staging_dir: Path
) -> Iterator[tuple[FileSpec, ManifestFile, pl.DataFrame]]:
    for spec in plan_files(dataset, frame):
        rows = file_rows(frame, spec)
        if rows.height == 0:
            continue
        write_parquet(rows, staging_dir / spec.repo_path, dataset)
        entry = manifest_entry(staging_dir, spec.repo_path, rows=rows.height, config=spec.config)
        summary = _summary(rows, spec)
        del rows  # free this file's rows before the next one is collected
        yield spec, entry, summary


def _summary(rows: pl.DataFrame, spec: FileSpec) -> pl.DataFrame:
    """One row: interval, ts range, exchanges and symbols of a written file."""
    exchanges = (
        pl.col("exchange").unique()
        if "exchange" in rows.columns
        else pl.col("exchanges").explode().unique()
    )
    ts = pl.col("ts") if "ts" in rows.columns else pl.lit(None, pl.Datetime("ms", "UTC"))
    return rows.select(
        pl.lit(spec.interval, pl.String).alias("interval"),
        ts.min().alias("ts_min"),
        ts.max().alias("ts_max"),
        exchanges.sort().implode().alias("exchanges"),
        pl.col("symbol").unique().sort().implode().alias("symbols"),
    )


def _config_stats(
    config: str, dataset: str, written: list[tuple[ManifestFile, pl.DataFrame]]
) -> ConfigStats:
    summary = pl.concat([s for _, s in written])
    interval = summary["interval"][0]
    return ConfigStats(
        config=config,
        dataset=dataset,
        interval=interval,
        files=len(written),
        rows=sum(e.rows or 0 for e, _ in written),
        size=sum(e.size for e, _ in written),
        ts_min=summary["ts_min"].min(),  # type: ignore[arg-type]
        ts_max=summary["ts_max"].max(),  # type: ignore[arg-type]
        exchanges=tuple(sorted(set(summary["exchanges"].explode().drop_nulls().to_list()))),
        symbols=tuple(sorted(set(summary["symbols"].explode().drop_nulls().to_list()))),
        columns=tuple((n, type_name(dt)) for n, dt in SILVER_SCHEMAS[dataset].items()),
    )


def _remove_stale(staging_dir: Path, keep: set[str]) -> None:
    """Drop Parquet files under `data/` that this build did not produce, then empty folders."""
    data_dir = staging_dir / "data"
    if not data_dir.is_dir():
        return
    for path in sorted(data_dir.rglob("*.parquet"), reverse=True):
        if path.relative_to(staging_dir).as_posix() not in keep:
            path.unlink()
    for folder in sorted((p for p in data_dir.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()


def _add_months(start: datetime, months: int) -> datetime:
    total = start.year * 12 + start.month - 1 + months
    return start.replace(year=total // 12, month=total % 12 + 1, day=1)


def _interval_rank(interval: str | None) -> int:
    return INTERVAL_ORDER.index(interval) if interval in INTERVAL_ORDER else len(INTERVAL_ORDER)
