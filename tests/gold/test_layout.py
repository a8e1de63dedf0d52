"""Layout: configs, file sizing, schemas, sorting, partition columns, deterministic bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from models.errors import InputError
from models.silver import SILVER_SCHEMAS
from tasks.publish import PublishError, build_layout, layout
from tasks.publish.layout import arrow_schema

EXPECTED_FILES = {
    "data/funding/2023.parquet",
    "data/funding/2024.parquet",
    "data/instruments/instruments.parquet",
    "data/ohlcv_1d/2023.parquet",
    "data/ohlcv_1d/2024.parquet",
    "data/ohlcv_1h/2023.parquet",
    "data/ohlcv_1h/2024.parquet",
    "data/ohlcv_1m/2023-12.parquet",
    "data/ohlcv_1m/2024-01.parquet",
    "data/ohlcv_aggregated_1d/2023.parquet",
    "data/ohlcv_aggregated_1d/2024.parquet",
    "data/ohlcv_aggregated_1h/2023.parquet",
    "data/ohlcv_aggregated_1h/2024.parquet",
    "data/ohlcv_aggregated_1m/2023-12.parquet",
    "data/ohlcv_aggregated_1m/2024-01.parquet",
    "data/open_interest/2023.parquet",
    "data/open_interest/2024.parquet",
}


def data_files(manifest):
    """The Parquet files of a build (not `LICENSE.md`)."""
    return [f for f in manifest.files if f.config is not None]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_configs_and_file_sizing(make_silver, tmp_path: Path) -> None:
    manifest = build_layout(make_silver(3), tmp_path)
    assert {f.repo_path for f in manifest.files} == EXPECTED_FILES | {"LICENSE.md"}
    assert [c.config for c in manifest.configs] == [
        "ohlcv_1m",
        "ohlcv_1h",
        "ohlcv_1d",
        "ohlcv_aggregated_1m",
        "ohlcv_aggregated_1h",
        "ohlcv_aggregated_1d",
        "funding",
        "open_interest",
        "instruments",
    ]
    on_disk = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet")}
    assert on_disk == EXPECTED_FILES


def test_rows_and_stats_match_silver(make_silver, tmp_path: Path) -> None:
    silver = make_silver(3)
    manifest = build_layout(silver, tmp_path)
    stats = {c.config: c for c in manifest.configs}
    candles = silver["ohlcv"].collect()
    for interval in ("1m", "1h", "1d"):
        expected = candles.filter(pl.col("interval") == interval).height
        assert stats[f"ohlcv_{interval}"].rows == expected
    assert stats["ohlcv_1m"].rows == 3 * 1440 * 9
    assert stats["funding"].rows == silver["funding"].collect().height
    assert stats["funding"].exchanges == ("binance", "okx")
    assert stats["ohlcv_aggregated_1h"].exchanges == ("binance", "coinbase", "okx")
    assert stats["ohlcv_1d"].symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    assert str(stats["ohlcv_1h"].ts_min) == "2023-12-30 00:00:00+00:00"
    assert str(stats["ohlcv_1h"].ts_max) == "2024-01-01 23:00:00+00:00"
    for entry in data_files(manifest):
        assert pq.ParquetFile(entry.local_path).metadata.num_rows == entry.rows
        assert entry.size == entry.local_path.stat().st_size
        assert entry.sha256 == _sha256(entry.local_path)


def test_schema_identical_and_partition_columns_present(make_silver, tmp_path: Path) -> None:
    manifest = build_layout(make_silver(3), tmp_path)
    for config in manifest.configs:
        files = [f for f in manifest.files if f.config == config.config]
        expected = arrow_schema(config.dataset)
        for entry in files:
            schema = pq.read_schema(entry.local_path).remove_metadata()
            assert schema.equals(expected), entry.repo_path
            frame = pl.read_parquet(entry.local_path)
            partition_cols = [c for c in ("exchange", "symbol", "interval") if c in frame.columns]
            assert frame.select(pl.col(partition_cols).null_count().sum()).row(0) == (0,) * len(
                partition_cols
            )
            if config.interval:
                assert frame["interval"].unique().to_list() == [config.interval]


def test_rows_sorted_by_symbol_exchange_ts(make_silver, tmp_path: Path) -> None:
    silver = {
        name: frame.collect().sample(fraction=1.0, shuffle=True, seed=7).lazy()
        for name, frame in make_silver(2).items()
    }
    manifest = build_layout(silver, tmp_path)
    for entry in data_files(manifest):
        frame = pl.read_parquet(entry.local_path)
        keys: list[str] = [c for c in ("symbol", "exchange", "ts") if c in frame.columns]
        if entry.config == "instruments":
            keys.append("kind")
        assert frame.equals(frame.sort(keys)), entry.repo_path


def test_parquet_settings(make_silver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, object]] = []
    real_write = pq.write_table

    def spy(table, where, **kwargs):
        calls.append(kwargs)
        return real_write(table, where, **kwargs)

    monkeypatch.setattr(layout.pq, "write_table", spy)
    manifest = build_layout(make_silver(2), tmp_path)
    assert calls and all(c["use_content_defined_chunking"] is True for c in calls)
    for entry in data_files(manifest):
        meta = pq.ParquetFile(entry.local_path).metadata
        for rg_index in range(meta.num_row_groups):
            group = meta.row_group(rg_index)
            assert group.total_byte_size < 100_000_000
            for col_index in range(group.num_columns):
                column = group.column(col_index)
                assert column.compression == "ZSTD"
                assert column.has_column_index and column.has_offset_index
        assert set(meta.metadata or {}) == {b"ARROW:schema"}


def test_row_groups_split_under_the_target(make_silver, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(layout, "ROW_GROUP_TARGET_BYTES", 200_000)
    manifest = build_layout({"ohlcv": make_silver(1)["ohlcv"]}, tmp_path)
    minute_file = next(f for f in manifest.files if f.config == "ohlcv_1m")
    meta = pq.ParquetFile(minute_file.local_path).metadata
    assert meta.num_row_groups > 1
    assert sum(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) == 1440 * 9


def test_rewriting_unchanged_data_gives_identical_bytes(make_silver, tmp_path: Path) -> None:
    first = build_layout(make_silver(3), tmp_path / "a")
    again_same_dir = build_layout(make_silver(3), tmp_path / "a")
    elsewhere = build_layout(make_silver(3), tmp_path / "b")
    digests = {f.repo_path: f.sha256 for f in first.files}
    assert {f.repo_path: f.sha256 for f in again_same_dir.files} == digests
    assert {f.repo_path: f.sha256 for f in elsewhere.files} == digests
    for entry in elsewhere.files:
        assert (tmp_path / "a" / entry.repo_path).read_bytes() == entry.local_path.read_bytes()


def test_a_new_day_rewrites_only_its_month_and_year_files(make_silver, tmp_path: Path) -> None:
    before = {f.repo_path: f.sha256 for f in build_layout(make_silver(3), tmp_path).files}
    after = {f.repo_path: f.sha256 for f in build_layout(make_silver(4), tmp_path).files}
    changed = {p for p in after if before.get(p) != after[p]}
    assert changed == {p for p in EXPECTED_FILES if "2024" in p}


def test_extra_columns_dropped_and_types_cast(make_silver, tmp_path: Path) -> None:
    silver = make_silver(1)
    hive = silver["ohlcv"].with_columns(
        pl.col("ts").dt.date().alias("date"),
        pl.col("volume").cast(pl.Float32),
        pl.col("trades").cast(pl.Int32),
    )
    manifest = build_layout({"ohlcv": hive}, tmp_path)
    schema = pq.read_schema(data_files(manifest)[0].local_path).remove_metadata()
    assert schema.names == SILVER_SCHEMAS["ohlcv"].names()
    assert schema.equals(arrow_schema("ohlcv"))


def test_missing_column_is_named(make_silver, tmp_path: Path) -> None:
    silver = make_silver(1)
    with pytest.raises(InputError, match=r"'funding' is missing column.*apr"):
        build_layout({"funding": silver["funding"].drop("apr")}, tmp_path)


def test_unknown_dataset_is_named(make_silver, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="trades_tape"):
        build_layout({"trades_tape": make_silver(1)["funding"]}, tmp_path)


def test_duplicate_keys_are_refused(make_silver, tmp_path: Path) -> None:
    funding = make_silver(1)["funding"]
    doubled = pl.concat([funding, funding.head(1)])
    with pytest.raises(InputError, match=r"duplicate .* data/funding/2023.parquet"):
        build_layout({"funding": doubled}, tmp_path)


def test_stale_staged_files_are_removed(make_silver, tmp_path: Path) -> None:
    build_layout(make_silver(3), tmp_path)
    silver = make_silver(3)
    del silver["funding"]
    manifest = build_layout(silver, tmp_path)
    assert not (tmp_path / "data" / "funding").exists()
    assert "funding" not in {c.config for c in manifest.configs}


def test_empty_datasets_produce_no_config(make_silver, tmp_path: Path) -> None:
    silver = make_silver(1)
    silver["funding"] = silver["funding"].head(0)
    manifest = build_layout(silver, tmp_path)
    assert "funding" not in {c.config for c in manifest.configs}
    assert not (tmp_path / "data" / "funding").exists()


def test_all_empty_silver_is_refused_naming_the_warehouse(make_silver, tmp_path: Path) -> None:
    """Injected: every silver frame empty (a missing or mistyped warehouse scans as empty).
    Held: `PublishError` naming the warehouse, and no data file staged."""
    silver = {name: frame.head(0) for name, frame in make_silver(1).items()}
    with pytest.raises(PublishError, match=r"silver warehouse /no/such/warehouse has no rows"):
        build_layout(silver, tmp_path, source="/no/such/warehouse")
    assert not list(tmp_path.rglob("*.parquet"))
