"""Damaged Parquet files in the warehouse are detected when planning, reported, and the day is
re-fetched (bronze) or rebuilt (silver) instead of being skipped or crashing the run."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from models.enums import Layer
from storage import PartitionKey, Warehouse

pytestmark = pytest.mark.usefixtures("prefect_api", "no_retry_delay")

DAYS = (date(2024, 2, 28), date(2024, 2, 29))
PICK: dict[str, Any] = {
    "exchanges": ["binance", "okx"],
    "symbols": ["BTCUSDT", "ETHUSDT"],
    "intervals": ["1h"],
    "datasets": ["ohlcv"],
}


def backfill() -> Any:
    from flows.backfill import backfill_flow
    from models.selection import Selection

    return asyncio.run(
        backfill_flow(selection=Selection(start=DAYS[0], end=DAYS[1], **PICK), return_state=True)
    )


def key(layer: Layer, exchange: str, day: date) -> PartitionKey:
    return PartitionKey(layer=layer, dataset="ohlcv", exchange=exchange, interval="1h", day=day)


def test_truncated_bronze_and_flipped_silver_are_repaired(
    sandbox: Any, warehouse_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRYPTO_PIPELINE_SANDBOX_URL", sandbox.url)
    assert backfill().is_completed()
    wh = Warehouse(str(warehouse_dir))
    silver = wh.scan(Layer.SILVER, "ohlcv").collect().sort("exchange", "symbol", "ts")
    bronze_before = wh.read(key(Layer.BRONZE, "binance", DAYS[0]))
    assert bronze_before is not None

    truncated = Path(wh.path(key(Layer.BRONZE, "binance", DAYS[0])))
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    flipped = Path(wh.path(key(Layer.SILVER, "okx", DAYS[1])))
    data = bytearray(flipped.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0xFF
    flipped.write_bytes(bytes(data))
    assert wh.validate(key(Layer.BRONZE, "binance", DAYS[0])) is not None
    assert wh.validate(key(Layer.SILVER, "okx", DAYS[1])) is not None

    sandbox.reset_stats()
    state = backfill()
    assert state.is_completed(), state.message
    stats = sandbox.stats()
    klines = sum(n for path, n in stats["binance"]["by_path"].items() if "klines" in path)
    assert klines >= 1  # the damaged day re-fetched (from REST or the archive)
    assert stats["okx"]["requests"] == 0  # the damaged silver was rebuilt from bronze
    for damaged in (key(Layer.BRONZE, "binance", DAYS[0]), key(Layer.SILVER, "okx", DAYS[1])):
        assert wh.validate(damaged) is None
    repaired = wh.read(key(Layer.BRONZE, "binance", DAYS[0]))
    assert repaired is not None
    cols = [c for c in bronze_before.columns if c != "fetched_at"]
    assert (
        repaired.select(cols)
        .sort("symbol", "open_time")
        .equals(bronze_before.select(cols).sort("symbol", "open_time"))
    )
    after = Warehouse(str(warehouse_dir)).scan(Layer.SILVER, "ohlcv").collect()
    assert after.sort("exchange", "symbol", "ts").equals(silver)
    assert not pl.concat([after]).is_empty()


def test_planning_reports_a_damaged_partition(
    sandbox: Any, warehouse_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from models.selection import Selection
    from models.settings import load_settings
    from storage.planning import plan

    monkeypatch.setenv("CRYPTO_PIPELINE_SANDBOX_URL", sandbox.url)
    assert backfill().is_completed()
    wh = Warehouse(str(warehouse_dir))
    target = Path(wh.path(key(Layer.BRONZE, "okx", DAYS[1])))
    target.write_bytes(b"PAR1 not parquet at all")
    request = Selection.parse(start=DAYS[0], end=DAYS[1], **PICK).resolve(load_settings())
    planned = plan(wh, Layer.BRONZE, request)
    assert [s.label for s in planned] == ["okx/ohlcv/1h/2024-02-29"]
    assert "unreadable Parquet" in next(iter(planned.damaged.values()))
    assert plan(wh, Layer.SILVER, request) == []


def test_planning_reads_back_only_files_not_written_whole(
    sandbox: Any, warehouse_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files still carrying the stamp recorded when they were written are not re-read; a file
    changed since is read back once, and its stamp is recorded when it passes."""
    from models.selection import Selection
    from models.settings import load_settings
    from storage.planning import plan

    monkeypatch.setenv("CRYPTO_PIPELINE_SANDBOX_URL", sandbox.url)
    assert backfill().is_completed()
    checked: list[PartitionKey] = []
    real_validate = Warehouse.validate

    def counting(self: Warehouse, key: PartitionKey) -> str | None:
        checked.append(key)
        return real_validate(self, key)

    monkeypatch.setattr(Warehouse, "validate", counting)
    wh = Warehouse(str(warehouse_dir))
    request = Selection.parse(start=DAYS[0], end=DAYS[1], **PICK).resolve(load_settings())
    assert plan(wh, Layer.BRONZE, request) == [] and plan(wh, Layer.SILVER, request) == []
    assert checked == []

    touched = key(Layer.SILVER, "binance", DAYS[0])
    path = Path(wh.path(touched))
    path.write_bytes(path.read_bytes())  # same bytes, but not the file that was written
    assert plan(wh, Layer.SILVER, request) == []
    assert checked == [touched]
    assert plan(wh, Layer.SILVER, request) == []  # passed once: its stamp is now recorded
    assert checked == [touched]
