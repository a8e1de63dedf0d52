"""A forced re-fetch of a closed day that the exchange now answers with less data keeps what is
stored, and the run reports it (Failed, naming the partition and symbol)."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from models.enums import Layer
from models.selection import Selection
from storage import Warehouse

pytestmark = pytest.mark.usefixtures("prefect_api", "no_retry_delay")

DAY = date(2024, 2, 28)
PICK: dict[str, Any] = {
    "exchanges": ["binance"],
    "symbols": ["BTCUSDT", "ETHUSDT"],
    "intervals": ["1h"],
    "datasets": ["ohlcv"],
}


def backfill(**params: Any) -> Any:
    from flows.backfill import backfill_flow

    return asyncio.run(
        backfill_flow(selection=Selection(start=DAY, end=DAY, **PICK, **params), return_state=True)
    )


def frames(warehouse: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    wh = Warehouse(str(warehouse))
    bronze = wh.scan(Layer.BRONZE, "ohlcv").collect().drop("fetched_at").sort("symbol", "open_time")
    silver = wh.scan(Layer.SILVER, "ohlcv").collect().sort("symbol", "ts")
    return bronze, silver


def test_forced_refetch_returning_less_keeps_the_stored_day(
    sandbox: Any, make_sandbox: Any, warehouse_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRYPTO_PIPELINE_SANDBOX_URL", sandbox.url)
    assert backfill().is_completed()
    bronze, silver = frames(warehouse_dir)
    assert silver.filter(pl.col("symbol") == "BTCUSDT").height == 24

    hollow = make_sandbox(seed=7, empty={("binance", "BTCUSDT", DAY)})
    monkeypatch.setenv("CRYPTO_PIPELINE_SANDBOX_URL", hollow.url)
    state = backfill(force=True)
    assert state.is_failed()
    assert "binance/ohlcv/1h/2024-02-28" in state.message and "BTCUSDT" in state.message
    assert "stored rows kept" in state.message
    assert hollow.stats()["binance"]["requests"] > 0  # it really re-fetched
    after_bronze, after_silver = frames(warehouse_dir)
    assert after_silver.equals(silver)
    assert after_bronze.select(pl.exclude("fetched_at")).height == bronze.height
    coverage = Warehouse(str(warehouse_dir)).coverage.query(layer=Layer.BRONZE, symbol="BTCUSDT")
    assert coverage.get_column("rows_present").to_list() == [24]

    # not forced: the day is complete, nothing is fetched and nothing changes
    hollow.reset_stats()
    assert backfill().is_completed()
    assert hollow.stats()["binance"]["requests"] == 0
    assert frames(warehouse_dir)[1].equals(silver)
