"""Warehouse writes and reads, on local disk and on S3 (moto's server on loopback)."""

from __future__ import annotations

import hashlib
import io
import os
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from models.enums import Dataset, Exchange, Layer
from models.silver import QUARANTINE_REASON, SILVER_SCHEMAS
from storage import PartitionKey, ShrinkRefused, Warehouse
from storage.fs import S3_SINGLE_PUT_LIMIT, STAGING_DIR
from storage.parquet import encode
from tests.storage import frames
from tests.storage.s3 import CuttingProxy, S3Endpoint, aws_env

D1, D2 = date(2024, 3, 1), date(2024, 3, 2)


def key(
    dataset: str = "ohlcv",
    exchange: str | None = "binance",
    interval: str | None = "1h",
    day: date = D1,
    layer: Layer = Layer.SILVER,
) -> PartitionKey:
    return PartitionKey(layer=layer, dataset=dataset, exchange=exchange, interval=interval, day=day)


@dataclass
class Case:
    """A dataset shape and the partitions written for it."""

    layer: Layer
    dataset: str
    parts: list[tuple[PartitionKey, pl.DataFrame]]


def _case(name: str) -> Case:
    if name == "ohlcv":
        parts = [
            (key("ohlcv", ex, iv, d), frames.ohlcv(ex, iv, d, candles=24 if iv == "1h" else 6))
            for ex in ("binance", "okx")
            for iv in ("1h", "4h")
            for d in (D1, D2)
        ]
        return Case(Layer.SILVER, "ohlcv", parts)
    if name == "ohlcv_aggregated":
        parts = [
            (key("ohlcv_aggregated", None, iv, d), frames.aggregated(iv, d))
            for iv in ("1h", "1d")
            for d in (D1, D2)
        ]
        return Case(Layer.SILVER, "ohlcv_aggregated", parts)
    if name == "funding":
        parts = [
            (key("funding", ex, None, d), frames.funding(ex, d))
            for ex in ("binance", "okx")
            for d in (D1, D2)
        ]
        return Case(Layer.SILVER, "funding", parts)
    if name == "open_interest":
        parts = [
            (key("open_interest", "okx", None, d), frames.open_interest("okx", d)) for d in (D1, D2)
        ]
        return Case(Layer.SILVER, "open_interest", parts)
    if name == "instruments":
        parts = [
            (key("instruments", ex, None, D1), frames.instruments(ex))
            for ex in ("binance", "coinbase", "okx")
        ]
        return Case(Layer.SILVER, "instruments", parts)
    if name == "quarantine_ohlcv":
        parts = [
            (
                key("ohlcv", "binance", "1h", d, Layer.QUARANTINE),
                frames.ohlcv("binance", "1h", d, candles=3).with_columns(
                    pl.lit("high below low").alias(QUARANTINE_REASON)
                ),
            )
            for d in (D1, D2)
        ]
        return Case(Layer.QUARANTINE, "ohlcv", parts)
    if name == "bronze_funding":
        parts = [
            (
                key("funding", ex.value, None, D1, Layer.BRONZE),
                frames.bronze(ex, Dataset.FUNDING, None, D1),
            )
            for ex in (Exchange.BINANCE, Exchange.OKX)
        ]
        return Case(Layer.BRONZE, "funding", parts)
    raise AssertionError(name)


CASES = [
    "ohlcv",
    "ohlcv_aggregated",
    "funding",
    "open_interest",
    "instruments",
    "quarantine_ohlcv",
    "bronze_funding",
]


def _expected(parts: list[tuple[PartitionKey, pl.DataFrame]]) -> pl.DataFrame:
    return pl.concat(
        [f.with_columns(pl.lit(k.day).alias("date")) for k, f in parts], how="diagonal_relaxed"
    )


def _same(actual: pl.DataFrame, expected: pl.DataFrame) -> None:
    """Equal as sets of rows, after casting the reader's types back to the written ones."""
    assert sorted(actual.columns) == sorted(expected.columns)
    if actual.schema["date"] == pl.String():  # pyarrow's plain "hive" flavour
        actual = actual.with_columns(pl.col("date").str.to_date())
    actual = actual.select(pl.col(c).cast(t) for c, t in expected.schema.items())
    order = [c for c, t in expected.schema.items() if not isinstance(t, pl.List)]
    assert_frame_equal(actual.sort(order), expected.sort(order))


def _stored(wh: Warehouse, k: PartitionKey) -> pl.DataFrame:
    frame = wh.read(k)
    assert frame is not None, f"no file for {k}"
    return frame


def _duckdb(wh: Warehouse, layer: Layer, dataset: str, sub: str = "") -> pl.DataFrame:
    """DuckDB's own hive reader locally; on S3 (no httpfs offline) a pyarrow dataset in DuckDB."""
    con = duckdb.connect()
    if wh.store.location.is_s3:
        con.register("t", _pyarrow(wh, layer, dataset, sub))
        return con.sql("select * from t").pl()
    path = wh.dataset_path(layer, dataset) + sub
    return con.sql(
        f"select * from read_parquet('{path}/**/*.parquet', hive_partitioning=true)"
    ).pl()


def _pyarrow(wh: Warehouse, layer: Layer, dataset: str, sub: str = "") -> ds.Dataset:
    root = wh.store.full(f"{layer.value}/{dataset}") + sub
    return ds.dataset(root, filesystem=wh.store.fs, format="parquet", partitioning="hive")


def _polars(wh: Warehouse, layer: Layer, dataset: str, sub: str = "") -> pl.DataFrame:
    path = wh.dataset_path(layer, dataset) + sub
    return pl.scan_parquet(
        f"{path}/**/*.parquet",
        hive_partitioning=True,
        storage_options=wh.store.location.storage_options,
    ).collect()


@pytest.mark.parametrize("name", CASES)
def test_every_shape_reads_back_through_all_readers(warehouse: Warehouse, name: str) -> None:
    case = _case(name)
    for k, frame in case.parts:
        result = warehouse.write(k, frame, closed=True)
        assert result.rows == frame.height and result.bytes > 0 and result.previous_rows is None
        assert_frame_equal(_stored(warehouse, k), frame)
    expected = _expected(case.parts)
    _same(warehouse.scan(case.layer, case.dataset).collect(), expected)
    if case.layer is Layer.BRONZE:  # raw fields differ by exchange: readers go per exchange
        for exchange in {k.exchange for k, _ in case.parts}:
            sub = f"/exchange={exchange}"
            want = _expected([(k, f) for k, f in case.parts if k.exchange == exchange])
            _same(_polars(warehouse, case.layer, case.dataset, sub), want)
            _same(_duckdb(warehouse, case.layer, case.dataset, sub), want)
            _same(pl.DataFrame(_pyarrow(warehouse, case.layer, case.dataset, sub).to_table()), want)
        return
    _same(_polars(warehouse, case.layer, case.dataset), expected)
    _same(_duckdb(warehouse, case.layer, case.dataset), expected)
    _same(pl.DataFrame(_pyarrow(warehouse, case.layer, case.dataset).to_table()), expected)


def test_partition_columns_in_files_match_reader_types(warehouse: Warehouse) -> None:
    for k, frame in _case("ohlcv").parts[:2]:
        warehouse.write(k, frame, closed=True)
    schema = _pyarrow(warehouse, Layer.SILVER, "ohlcv").schema
    assert str(schema.field("exchange").type) == "string"
    assert str(schema.field("interval").type) == "string"
    lazy = pl.scan_parquet(
        warehouse.dataset_path(Layer.SILVER, "ohlcv") + "/**/*.parquet",
        hive_partitioning=True,
        storage_options=warehouse.store.location.storage_options,
    )
    assert lazy.collect_schema()["date"] == pl.Date()
    assert warehouse.scan(Layer.SILVER, "ohlcv").collect_schema()["date"] == pl.Date()


def test_local_directory_scan_without_glob(tmp_path: Path) -> None:
    wh = Warehouse(str(tmp_path / "wh"))
    case = _case("funding")
    for k, frame in case.parts:
        wh.write(k, frame, closed=True)
    directory = wh.dataset_path(Layer.SILVER, "funding")
    _same(pl.scan_parquet(directory, hive_partitioning=True).collect(), _expected(case.parts))


def test_rewrite_replaces_the_file(warehouse: Warehouse) -> None:
    k = key(interval="1h")
    first = frames.ohlcv("binance", "1h", D1, candles=24, seed=1)
    second = frames.ohlcv("binance", "1h", D1, candles=24, seed=2)
    warehouse.write(k, first, closed=True)
    result = warehouse.write(k, second, closed=True)
    assert result.previous_rows == first.height
    assert warehouse.list_keys(Layer.SILVER, "ohlcv") == [k]
    assert warehouse.store.list_files("silver") == [k.path]
    assert_frame_equal(_stored(warehouse, k), second)


def test_stamp_names_the_written_file_and_changes_when_it_is_replaced(
    warehouse: Warehouse,
) -> None:
    k, other = key(interval="1h"), key(interval="1h", day=D2)
    frame = frames.ohlcv("binance", "1h", D1, candles=24, seed=1)
    first = warehouse.write(k, frame, closed=True)
    assert first.stamp and warehouse.stamps([k, other]) == {k: first.stamp}
    time.sleep(1.1)  # S3's LastModified counts whole seconds
    again = warehouse.write(k, frame, closed=True)  # identical bytes, still a new file
    assert again.stamp and again.stamp != first.stamp
    assert warehouse.stamps([k]) == {k: again.stamp}
    assert warehouse.write(other, frame.clear(), closed=True).stamp is None


def test_file_carries_format_and_provenance(warehouse: Warehouse) -> None:
    k = key(interval="1h")
    window = (datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC))
    warehouse.write(k, frames.ohlcv("binance", "1h", D1, candles=24), closed=True, window=window)
    meta = warehouse.metadata(k)
    assert meta is not None
    assert meta["version"] == "0.1.0"
    assert meta["rows"] == "120" and meta["partition"] == str(k) and meta["closed"] == "true"
    assert meta["window_start"] == window[0].isoformat()
    assert meta["window_end"] == window[1].isoformat()
    assert datetime.fromisoformat(meta["written_at"]).tzinfo is not None
    with warehouse.store.open_input(k.path) as handle:
        parquet = pq.ParquetFile(handle)
        column = parquet.metadata.row_group(0).column(3)
        assert column.compression == "ZSTD"
        assert column.is_stats_set and column.statistics.has_min_max
        assert column.has_column_index and column.has_offset_index
    assert warehouse.row_count(k) == 120


def test_missing_partition(warehouse: Warehouse) -> None:
    k = key()
    assert warehouse.read(k) is None
    assert warehouse.row_count(k) is None
    assert warehouse.metadata(k) is None
    assert not warehouse.exists(k)
    assert warehouse.list_keys(Layer.SILVER, "ohlcv") == []
    assert warehouse.validate(k) == f"missing: no file at {warehouse.path(k)}"


def test_empty_scan_has_the_contract_schema(warehouse: Warehouse) -> None:
    schema = warehouse.scan("silver", "ohlcv").collect_schema()
    assert dict(schema) == {**SILVER_SCHEMAS["ohlcv"], "date": pl.Date()}
    quarantine = warehouse.scan(Layer.QUARANTINE, "funding").collect_schema()
    assert quarantine[QUARANTINE_REASON] == pl.String()
    assert warehouse.scan(Layer.SILVER, "ohlcv").collect().is_empty()


def test_frame_contradicting_its_key_is_refused(warehouse: Warehouse) -> None:
    k = key(interval="1h")
    frame = frames.ohlcv("binance", "1h", D1, candles=2)
    with pytest.raises(ValueError, match=r"exchange=binance.*'exchange' holds \['okx'\]"):
        warehouse.write(k, frame.with_columns(exchange=pl.lit("okx")), closed=True)
    with pytest.raises(ValueError, match="'interval' holds"):
        warehouse.write(k, frame.with_columns(interval=pl.lit("1m")), closed=True)
    with pytest.raises(ValueError, match="other days"):
        warehouse.write(key(interval="1h", day=D2), frame, closed=True)
    with pytest.raises(ValueError, match="reserved"):
        warehouse.write(k, frame.with_columns(date=pl.lit(D1)), closed=True)
    assert not warehouse.exists(k)


def test_missing_partition_columns_are_filled_from_the_key(warehouse: Warehouse) -> None:
    k = key("funding", "okx", None)
    frame = frames.funding("okx", D1).drop("exchange")
    warehouse.write(k, frame, closed=True)
    stored = warehouse.read(k)
    assert stored is not None and stored.get_column("exchange").unique().to_list() == ["okx"]
    assert warehouse.validate(k) is None


# -- never-shrink guard ------------------------------------------------------------------------


def test_closed_day_never_shrinks(warehouse: Warehouse) -> None:
    k = key(interval="1h")
    full = frames.ohlcv("binance", "1h", D1, candles=24)
    warehouse.write(k, full, closed=True)
    for offered in (full.head(50), full.clear()):
        with pytest.raises(ShrinkRefused) as info:
            warehouse.write(k, offered, closed=True)
        message = str(info.value)
        for part in ("layer=silver", "dataset=ohlcv", "exchange=binance", "interval=1h"):
            assert part in message
        assert "day=2024-03-01" in message and "--force" in message
        assert f"{full.height} rows stored, {offered.height} rows offered" in message
        assert warehouse.row_count(k) == full.height
    same = warehouse.write(k, full, closed=True)
    assert same.rows == full.height and same.previous_rows == full.height


def test_force_and_open_days_may_shrink(warehouse: Warehouse) -> None:
    k = key(interval="1h")
    full = frames.ohlcv("binance", "1h", D1, candles=24)
    warehouse.write(k, full, closed=True)
    forced = warehouse.write(k, full.head(10), closed=True, force=True)
    assert (forced.rows, forced.previous_rows) == (10, full.height)
    open_day = warehouse.write(k, full.head(5), closed=False)
    assert (open_day.rows, open_day.previous_rows) == (5, 10)
    emptied = warehouse.write(k, full.clear(), closed=True, force=True)
    assert (emptied.rows, emptied.bytes, emptied.previous_rows) == (0, 0, 5)
    assert not warehouse.exists(k)


def test_empty_frame_without_file_writes_nothing(warehouse: Warehouse) -> None:
    k = key(interval="1h")
    result = warehouse.write(k, frames.ohlcv("binance", "1h", D1, candles=1).clear(), closed=True)
    assert (result.rows, result.bytes, result.previous_rows) == (0, 0, None)
    assert not warehouse.exists(k)
    assert warehouse.store.list_files("silver") == []


# -- atomicity -----------------------------------------------------------------------------------


def _all_readers_see(wh: Warehouse, k: PartitionKey, frame: pl.DataFrame) -> None:
    want = frame.with_columns(pl.lit(k.day).alias("date"))
    _same(_polars(wh, k.layer, k.dataset), want)
    _same(_duckdb(wh, k.layer, k.dataset), want)
    _same(pl.DataFrame(_pyarrow(wh, k.layer, k.dataset).to_table()), want)
    _same(wh.scan(k.layer, k.dataset).collect(), want)


def test_crash_before_rename_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wh = Warehouse(str(tmp_path / "wh"))
    k = key(interval="1h")
    old = frames.ohlcv("binance", "1h", D1, candles=24, seed=1)
    wh.write(k, old, closed=True)

    def crash(src: object, dst: object) -> None:
        raise OSError("simulated crash between temp write and rename")

    monkeypatch.setattr("storage.fs.os.replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        wh.write(k, frames.ohlcv("binance", "1h", D1, candles=24, seed=2), closed=True)
    monkeypatch.undo()
    assert_frame_equal(_stored(wh, k), old)
    partition_dir = tmp_path / "wh" / k.directory
    assert sorted(p.name for p in partition_dir.iterdir()) == ["part-0.parquet"]
    _all_readers_see(wh, k, old)


def test_killed_writer_leftovers_are_invisible_and_cleaned(tmp_path: Path) -> None:
    wh = Warehouse(str(tmp_path / "wh"))
    k = key(interval="1h")
    old = frames.ohlcv("binance", "1h", D1, candles=24, seed=1)
    wh.write(k, old, closed=True)
    staging = tmp_path / "wh" / STAGING_DIR
    leftover = staging / "0123abcd.part-0.parquet.tmp"  # what a kill -9 mid-write leaves
    leftover.write_bytes(b"PAR1 half a file")
    fresh = staging / "4567cdef.part-0.parquet.tmp"  # another writer, still at work
    fresh.write_bytes(b"PAR1 in progress")
    os.utime(leftover, (0, 0))
    _all_readers_see(wh, k, old)
    assert (
        pl.scan_parquet(wh.dataset_path("silver", "ohlcv"), hive_partitioning=True).collect().height
        == old.height
    )
    wh.write(key(interval="1h", day=D2), frames.ohlcv("binance", "1h", D2, candles=1), closed=True)
    assert not leftover.exists() and fresh.exists()


def test_s3_write_is_one_put_of_the_whole_object(s3_endpoint: S3Endpoint, s3_bucket: str) -> None:
    with aws_env(s3_endpoint):
        wh = Warehouse(f"s3://{s3_bucket}/single-put")
        k = key(interval="1m")
        result = wh.write(k, frames.ohlcv("binance", "1m", D1), closed=True)
    assert result.bytes < S3_SINGLE_PUT_LIMIT
    head = s3_endpoint.client().head_object(Bucket=s3_bucket, Key=f"single-put/{k.path}")
    body = s3_endpoint.client().get_object(Bucket=s3_bucket, Key=f"single-put/{k.path}")["Body"]
    etag = head["ETag"].strip('"')
    assert "-" not in etag, "multipart upload"
    assert etag == hashlib.md5(body.read()).hexdigest()


def test_s3_upload_cut_mid_request_keeps_the_old_object(
    s3_endpoint: S3Endpoint, s3_bucket: str
) -> None:
    proxy = CuttingProxy(s3_endpoint.url)
    try:
        with aws_env(S3Endpoint(proxy.url)):
            wh = Warehouse(f"s3://{s3_bucket}/cut")
        k = key(interval="1m")
        old = frames.ohlcv("binance", "1m", D1, seed=1)
        wh.write(k, old, closed=True)
        proxy.arm(cut_after=32 * 1024)
        with pytest.raises(OSError):
            wh.write(k, frames.ohlcv("binance", "1m", D1, seed=2), closed=True)
        assert proxy.cuts >= 1
        proxy.disarm()
        assert_frame_equal(_stored(wh, k), old)
        assert wh.validate(k) is None
        assert wh.list_keys(Layer.SILVER, "ohlcv") == [k]
    finally:
        proxy.close()


# -- validation ----------------------------------------------------------------------------------


def test_validate_detects_corruption(warehouse: Warehouse) -> None:
    k = key(interval="1h")
    warehouse.write(k, frames.ohlcv("binance", "1h", D1, candles=24), closed=True)
    assert warehouse.validate(k) is None
    data = bytearray(warehouse.store.read_bytes(k.path))
    middle = len(data) // 3
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    warehouse.store.put_bytes(k.path, bytes(data))
    reason = warehouse.validate(k)
    assert reason is not None and warehouse.path(k) in reason
    warehouse.store.put_bytes(k.path, bytes(data[: len(data) // 2]))
    reason = warehouse.validate(k)
    assert reason is not None and reason.startswith("unreadable Parquet")


def test_validate_detects_a_file_in_the_wrong_partition(warehouse: Warehouse) -> None:
    good, wrong = key(interval="1h"), key(exchange="okx", interval="1h")
    warehouse.write(good, frames.ohlcv("binance", "1h", D1, candles=3), closed=True)
    warehouse.store.put_bytes(wrong.path, warehouse.store.read_bytes(good.path))
    reason = warehouse.validate(wrong)
    assert reason is not None and "'exchange' holds ['binance'], not 'okx'" in reason


def test_corrupt_file_can_be_replaced(warehouse: Warehouse) -> None:
    k = key(interval="1h")
    warehouse.store.put_bytes(k.path, b"not parquet at all")
    frame = frames.ohlcv("binance", "1h", D1, candles=2)
    result = warehouse.write(k, frame, closed=True)
    assert result.previous_rows is None and warehouse.validate(k) is None


def test_dictionaries_only_where_values_repeat() -> None:
    """Symbols get a dictionary; raw price strings and per-row times (nearly all distinct)
    do not, and every value reads back unchanged."""
    rows = 2000
    table = pa.table(
        {
            "symbol": [f"S{i % 5}USDT" for i in range(rows)],
            "open": [f"{60000 + i * 0.37:.2f}" for i in range(rows)],
            "open_time": list(range(rows)),
            "close": [float(i) for i in range(rows)],
        }
    )
    data = encode(table)
    meta = pq.ParquetFile(io.BytesIO(data)).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(4)}
    assert "RLE_DICTIONARY" in encodings["symbol"]
    assert "RLE_DICTIONARY" not in encodings["open"]
    assert "RLE_DICTIONARY" not in encodings["open_time"]
    assert "BYTE_STREAM_SPLIT" in encodings["close"]
    assert pq.read_table(io.BytesIO(data)).equals(table)
