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


def bronze(warehouse: Path, url: str, *, recheck: bool, selection: Selection = SELECTION) -> Any:
    async def go() -> Any:
        settings = load_settings(
            warehouse=str(warehouse),
            sandbox_url=url,
            binance_source="auto",
            binance_archive_recheck=recheck,
        )
        ctx = RunContext(settings)
        return await run_bronze(selection.resolve(ctx.settings), ctx, DIRECT)

    return asyncio.run(go())


def silver(warehouse: Path, url: str, selection: Selection = SELECTION) -> Any:
    async def go() -> Any:
        settings = load_settings(warehouse=str(warehouse), sandbox_url=url)
        ctx = RunContext(settings)
        return await run_silver(selection.resolve(ctx.settings), ctx, DIRECT)

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

    # A revised file: same rows, new content and checksum -> its symbol re-ingested, alone.
    faults.replaced["BTCUSDT-1m-2024-03.zip"] = "revised"
    served = faults.served
    revised = bronze(tmp_path, server.url, recheck=True)
    assert revised.failures == []
    assert faults.served - served == 1  # BTCUSDT's month file only: ETHUSDT's is unchanged
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
        eth = now.filter(pl.col("symbol") == "ETHUSDT")
        assert eth.equals(before[day].filter(pl.col("symbol") == "ETHUSDT"))  # never refetched

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
    # The refused day's record describes the rows it keeps: a plain re-run asks nothing.
    asked = faults.requests
    assert bronze(tmp_path, server.url, recheck=False).failures == []
    assert faults.requests == asked


PERP_SELECTION = Selection(
    start=DAYS[0],
    end=DAYS[1],
    exchanges=[Exchange.BINANCE],
    datasets=[Dataset.FUNDING, Dataset.OPEN_INTEREST],
    symbols=["BTCUSDT"],
)


def silver_funding(warehouse: Path) -> pl.DataFrame:
    frame = Warehouse(str(warehouse)).scan(Layer.SILVER, "funding").collect()
    return frame.sort("ts")


def stored_perp(warehouse: Path, dataset: Dataset, day: date) -> pl.DataFrame:
    spec = PartitionSpec(exchange=Exchange.BINANCE, dataset=dataset, interval=None, day=day)
    frame = Warehouse(str(warehouse)).read(PartitionKey.of(spec))
    assert frame is not None, spec.label
    return frame


def test_replaced_funding_and_metrics_files_are_reingested_never_degrading(
    tmp_path: Path, make_sandbox: Any
) -> None:
    """Injected: the monthly fundingRate file and one daily metrics file replaced at the source
    (revised values), then the other day's metrics file shortened by its last hour. Held: the
    revised files' rows are re-ingested with their new checksums and values; the shortened file
    is refused for its day, whose stored rows stay (never degrade), reported by name."""
    from sandbox.archive import archive_faults

    server = make_sandbox(seed=7, rate_limits="off", faults="none")
    faults = archive_faults(server.app)
    first = bronze(tmp_path, server.url, recheck=True, selection=PERP_SELECTION)
    assert first.failures == []
    assert silver(tmp_path, server.url, PERP_SELECTION).failures == []
    built = silver_funding(tmp_path)
    funding = {day: stored_perp(tmp_path, Dataset.FUNDING, day) for day in DAYS}
    oi = {day: stored_perp(tmp_path, Dataset.OPEN_INTEREST, day) for day in DAYS}
    for day in DAYS:
        assert funding[day].height > 0 and oi[day].height > 0
        assert sources(funding[day], "BTCUSDT")[0].startswith(
            "archive:BTCUSDT-fundingRate-2024-03.zip:"
        )
        (label,) = sources(oi[day], "BTCUSDT")
        assert label.startswith(f"archive:BTCUSDT-metrics-{day.isoformat()}.zip:")

    # Unchanged: one .CHECKSUM per stored file (one funding month, two metrics days).
    asked = faults.requests
    assert bronze(tmp_path, server.url, recheck=True, selection=PERP_SELECTION).failures == []
    assert faults.requests - asked == 3

    faults.replaced["BTCUSDT-fundingRate-2024-03.zip"] = "revised"
    faults.replaced[f"BTCUSDT-metrics-{DAYS[0].isoformat()}.zip"] = "revised"
    revised = bronze(tmp_path, server.url, recheck=True, selection=PERP_SELECTION)
    assert revised.failures == []
    for day in DAYS:
        now = stored_perp(tmp_path, Dataset.FUNDING, day)
        assert sources(now, "BTCUSDT") != sources(funding[day], "BTCUSDT")
        assert now.height == funding[day].height
        moved = now["fundingRate"].cast(pl.Float64) - funding[day]["fundingRate"].cast(pl.Float64)
        assert moved.round(10).unique().to_list() == [1e-8]
    oi_now = stored_perp(tmp_path, Dataset.OPEN_INTEREST, DAYS[0])
    assert sources(oi_now, "BTCUSDT") != sources(oi[DAYS[0]], "BTCUSDT")
    assert oi_now.height == oi[DAYS[0]].height
    assert stored_perp(tmp_path, Dataset.OPEN_INTEREST, DAYS[1]).equals(oi[DAYS[1]])
    # Silver funding built from the old file is rebuilt with the revised rates.
    assert silver(tmp_path, server.url, PERP_SELECTION).failures == []
    rebuilt = silver_funding(tmp_path)
    assert rebuilt.height == built.height
    revised_by = (rebuilt["funding_rate"] - built["funding_rate"]).round(10).unique().to_list()
    assert revised_by == [1e-8]

    # The other day's metrics file loses its last hour: that day keeps what it stored.
    faults.replaced[f"BTCUSDT-metrics-{DAYS[1].isoformat()}.zip"] = "shortened"
    short = bronze(tmp_path, server.url, recheck=True, selection=PERP_SELECTION)
    assert any(DAYS[1].isoformat() in f for f in short.failures), short.failures
    assert stored_perp(tmp_path, Dataset.OPEN_INTEREST, DAYS[1]).equals(oi[DAYS[1]])
