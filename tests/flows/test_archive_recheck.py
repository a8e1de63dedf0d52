"""A Binance archive file replaced at the source after it was stored (issue 16), against the
sandbox (which replaces files on request), calling the bronze stage directly:

* without `binance_archive_recheck` a re-run of the stored days makes no request;
* with it, one `.CHECKSUM` request per stored file; unchanged files redo nothing;
* a revised file (same rows, new content) is re-ingested: its rows carry the new checksum;
* a shortened file (its last day's rows gone) is re-ingested where it still has the rows, and
  the day it lost keeps the stored rows (never degrade), reported as a failure naming it.
"""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from models.enums import Dataset, Exchange, Interval, Layer
from models.partitions import PartitionSpec
from models.selection import Selection
from models.settings import load_settings
from storage import PartitionKey, Warehouse
from tasks.bronze_stage import run_bronze
from tasks.context import RunContext
from tasks.silver_stage import run_silver
from tasks.units import DIRECT

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DAYS = (date(2024, 3, 30), date(2024, 3, 31))
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
SELECTION = Selection(
    start=DAYS[0],
    end=DAYS[1],
    exchanges=[Exchange.BINANCE],
    datasets=[Dataset.OHLCV],
    intervals=[Interval.M1],
    symbols=SYMBOLS,
)


def bronze(warehouse: Path, url: str, *, recheck: bool) -> Any:
    async def go() -> Any:
        settings = load_settings(
            warehouse=str(warehouse),
            sandbox_url=url,
            binance_source="auto",
            binance_archive_recheck=recheck,
        )
        ctx = RunContext(settings)
        return await run_bronze(SELECTION.resolve(ctx.settings), ctx, DIRECT)

    return asyncio.run(go())


def silver(warehouse: Path, url: str) -> Any:
    async def go() -> Any:
        settings = load_settings(warehouse=str(warehouse), sandbox_url=url)
        ctx = RunContext(settings)
        return await run_silver(SELECTION.resolve(ctx.settings), ctx, DIRECT)

    return asyncio.run(go())


def silver_trades(warehouse: Path, day: date, symbol: str) -> pl.Series:
    spec = PartitionSpec(
        exchange=Exchange.BINANCE, dataset=Dataset.OHLCV, interval=Interval.M1, day=day
    )
    frame = Warehouse(str(warehouse)).read(PartitionKey.of(spec, Layer.SILVER))
    assert frame is not None
    return frame.filter(pl.col("symbol") == symbol).sort("ts").get_column("trades")


def silver_complete(warehouse: Path) -> list[bool]:
    records = Warehouse(str(warehouse)).coverage.query(layer=Layer.SILVER, dataset="ohlcv")
    return records.filter(pl.col("symbol") == "BTCUSDT").get_column("complete").to_list()


def stored(warehouse: Path, day: date) -> pl.DataFrame:
    spec = PartitionSpec(
        exchange=Exchange.BINANCE, dataset=Dataset.OHLCV, interval=Interval.M1, day=day
    )
    key = PartitionKey.of(spec)
    frame = Warehouse(str(warehouse)).read(key)
    assert frame is not None
    return frame.sort("symbol", "open_time")


def sources(frame: pl.DataFrame, symbol: str) -> list[str]:
    return frame.filter(pl.col("symbol") == symbol).get_column("source").unique().to_list()


def test_a_replaced_archive_file_is_reingested_never_degrading(
    tmp_path: Path, make_sandbox: Any
) -> None:
    from sandbox.archive import archive_faults

    server = make_sandbox(seed=7, rate_limits="off", faults="none")
    faults = archive_faults(server.app)
    first = bronze(tmp_path, server.url, recheck=False)
    assert first.failures == []
    assert silver(tmp_path, server.url).failures == []
    built = {day: silver_trades(tmp_path, day, "BTCUSDT") for day in DAYS}
    before = {day: stored(tmp_path, day) for day in DAYS}
    for day in DAYS:
        assert before[day].height == 2 * 1440
        for symbol in SYMBOLS:
            (label,) = sources(before[day], symbol)
            assert label.startswith(f"archive:{symbol}-1m-2024-03.zip:")

    # Without the recheck a re-run of stored days asks nothing.
    asked = faults.requests
    again = bronze(tmp_path, server.url, recheck=False)
    assert again.failures == [] and faults.requests == asked

    # With it, unchanged files: one .CHECKSUM each, nothing redone.
    asked = faults.requests
    checked = bronze(tmp_path, server.url, recheck=True)
    assert checked.failures == [] and faults.requests - asked == 2
    assert all(stored(tmp_path, day).equals(before[day]) for day in DAYS)

    # A revised file: same rows, new content and checksum -> re-ingested.
    faults.replaced["BTCUSDT-1m-2024-03.zip"] = "revised"
    revised = bronze(tmp_path, server.url, recheck=True)
    assert revised.failures == []
    for day in DAYS:
        now = stored(tmp_path, day)
        assert now.height == 2 * 1440
        (old,) = sources(before[day], "BTCUSDT")
        (new,) = sources(now, "BTCUSDT")
        assert new != old and new.startswith("archive:BTCUSDT-1m-2024-03.zip:")
        btc_now = now.filter(pl.col("symbol") == "BTCUSDT")
        btc_old = before[day].filter(pl.col("symbol") == "BTCUSDT")
        assert (btc_now["trades"] - btc_old["trades"]).unique().to_list() == [1]
        assert btc_now["close"].equals(btc_old["close"])
        eth = now.filter(pl.col("symbol") == "ETHUSDT").drop("fetched_at")
        assert eth.equals(before[day].filter(pl.col("symbol") == "ETHUSDT").drop("fetched_at"))

    # Silver built from the old file is rebuilt by the next silver run, with the new values.
    assert silver_complete(tmp_path) == [False, False]
    assert silver(tmp_path, server.url).failures == []
    assert silver_complete(tmp_path) == [True, True]
    for day in DAYS:
        assert (silver_trades(tmp_path, day, "BTCUSDT") - built[day]).unique().to_list() == [1]

    # Checked again: nothing left to redo.
    asked = faults.requests
    settled = bronze(tmp_path, server.url, recheck=True)
    assert settled.failures == [] and faults.requests - asked == 2

    # A shortened file (2024-03-31 gone): 03-30 re-ingested, 03-31 keeps the stored rows.
    faults.replaced["ETHUSDT-1m-2024-03.zip"] = "shortened"
    short = bronze(tmp_path, server.url, recheck=True)
    assert any("ETHUSDT" in f and "2024-03-31" in f for f in short.failures), short.failures
    day30, day31 = stored(tmp_path, DAYS[0]), stored(tmp_path, DAYS[1])
    (eth30,) = sources(day30, "ETHUSDT")
    assert eth30 != sources(before[DAYS[0]], "ETHUSDT")[0]
    assert sources(day31, "ETHUSDT") == sources(before[DAYS[1]], "ETHUSDT")  # kept
    assert day31.filter(pl.col("symbol") == "ETHUSDT").height == 1440
    assert day31.height == 2 * 1440
