"""No run loses or degrades good data (issue 15): partial re-runs keep the aggregate whole,
forced re-runs never degrade a stored closed day, deleted files are re-created, incomplete days
are fetched again until they settle, and a derived interval asked alone fetches its source.

Each test injects its fault in-process (a client method patched, a file removed) against the
session's clean sandbox and checks what the warehouse holds afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from clients.base import BaseClient
from clients.binance import BinanceClient
from clients.protocol import UnknownSymbol
from models.dates import utc_today
from models.enums import Exchange, Interval, Layer, MarketKind
from models.partitions import PartitionSpec
from models.selection import Selection
from storage import PartitionKey, Warehouse

pytestmark = pytest.mark.usefixtures("prefect_api", "no_retry_delay")

DAY = date(2024, 2, 28)
ONE_HOUR: dict[str, Any] = {"intervals": ["1h"], "datasets": ["ohlcv"]}


def backfill(day: date = DAY, **params: Any) -> Any:
    from flows.backfill import backfill_flow

    selection = Selection(start=day, end=day, **{**ONE_HOUR, **params})
    return asyncio.run(backfill_flow(selection=selection, return_state=True))


def silver(warehouse: Path, dataset: str = "ohlcv") -> pl.DataFrame:
    frame = Warehouse(str(warehouse)).scan(Layer.SILVER, dataset).collect()
    keys = [c for c in ("exchange", "symbol", "interval", "ts") if c in frame.columns]
    return frame.sort(keys)


def bronze(warehouse: Path, exchange: str = "binance") -> pl.DataFrame:
    wh = Warehouse(str(warehouse))
    keys = [k for k in wh.list_keys(Layer.BRONZE, "ohlcv") if k.exchange == exchange]
    frames = [frame for k in keys if (frame := wh.read(k)) is not None]
    return pl.concat(frames).sort("symbol", "open_time")


def patch_ohlcv(
    monkeypatch: pytest.MonkeyPatch,
    cls: type[BaseClient],
    change: Callable[[str, pl.DataFrame], pl.DataFrame],
) -> None:
    """Make `cls.ohlcv` answer `change(symbol, real answer)`."""
    real = cls.ohlcv

    async def ohlcv(
        self: Any, symbol: str, interval: Interval, start: datetime, end: datetime
    ) -> pl.DataFrame:
        return change(symbol, await real(self, symbol, interval, start, end))

    monkeypatch.setattr(cls, "ohlcv", ohlcv)


@pytest.fixture
def live(sandbox: Any, warehouse_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CRYPTO_PIPELINE_SANDBOX_URL", sandbox.url)
    sandbox.reset_stats()
    return sandbox


def requests(sandbox: Any) -> int:
    return sum(s["requests"] for s in sandbox.stats().values())


def test_a_run_on_one_exchange_rebuilds_the_aggregate_from_every_exchange(
    live: Any, warehouse_dir: Path
) -> None:
    """Injected: after a 3-exchange day, a forced run on Binance alone, then a new symbol
    added on Binance alone (no force). Held: every aggregate row of the day keeps its venues
    (binance, coinbase, okx), and the new symbol aggregates from the one venue it was
    fetched on."""
    symbols = ["BTCUSDT", "ETHUSDT"]
    assert backfill(symbols=symbols).is_completed()
    before = silver(warehouse_dir, "ohlcv_aggregated")
    assert before.height == 48
    assert set(before.get_column("n_exchanges")) == {3}

    assert backfill(exchanges=["binance"], symbols=symbols, force=True).is_completed()
    assert silver(warehouse_dir, "ohlcv_aggregated").equals(before)

    assert backfill(exchanges=["binance"], symbols=["SOLUSDT"]).is_completed()
    after = silver(warehouse_dir, "ohlcv_aggregated")
    assert after.filter(pl.col("symbol") != "SOLUSDT").equals(before)
    sol = after.filter(pl.col("symbol") == "SOLUSDT")
    assert sol.height == 24 and set(sol.get_column("n_exchanges")) == {1}


def test_a_forced_rerun_after_a_delisting_keeps_the_symbols_history(
    live: Any, warehouse_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Injected: Binance says ETHUSDT is not listed any more, then a forced re-run of
    BTCUSDT,ETHUSDT. Held: ETHUSDT keeps its 24 stored rows in bronze and silver, and its
    coverage stays complete; BTCUSDT is re-fetched."""
    pick = {"exchanges": ["binance"], "symbols": ["BTCUSDT", "ETHUSDT"]}
    assert backfill(**pick).is_completed()
    stored = silver(warehouse_dir)
    real = BaseClient.resolve

    async def resolve(self: Any, symbol: str, kind: MarketKind) -> Any:
        if symbol == "ETHUSDT":
            raise UnknownSymbol(
                f"{symbol} is not listed", exchange="binance", endpoint="instruments", symbol=symbol
            )
        return await real(self, symbol, kind)

    monkeypatch.setattr(BaseClient, "resolve", resolve)
    live.reset_stats()
    state = backfill(**pick, force=True)
    assert state.is_completed(), state.message
    assert live.stats()["binance"]["requests"] > 0
    assert silver(warehouse_dir).equals(stored)
    assert bronze(warehouse_dir).filter(pl.col("symbol") == "ETHUSDT").height == 24
    eth = Warehouse(str(warehouse_dir)).coverage.query(symbol="ETHUSDT")
    assert eth.get_column("complete").all() and set(eth.get_column("rows_present")) == {24}


def test_a_forced_answer_with_a_bad_value_never_replaces_the_good_candle(
    live: Any, warehouse_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Injected: a forced re-fetch where Binance answers 24 BTCUSDT candles as stored, one of
    them with high below low. Held: the run ends Failed naming the partition, the symbol and
    the reason; bronze and silver keep the good stored candle (nothing replaced)."""
    pick = {"exchanges": ["binance"], "symbols": ["BTCUSDT"]}
    assert backfill(**pick).is_completed()
    stored_silver, stored_bronze = silver(warehouse_dir), bronze(warehouse_dir)

    def spoil(symbol: str, frame: pl.DataFrame) -> pl.DataFrame:
        bad = pl.int_range(pl.len()) == 5
        return frame.with_columns(
            pl.when(bad).then(pl.col("low")).otherwise(pl.col("high")).alias("high"),
            pl.when(bad).then(pl.col("high")).otherwise(pl.col("low")).alias("low"),
        )

    patch_ohlcv(monkeypatch, BinanceClient, spoil)
    state = backfill(**pick, force=True)
    assert state.is_failed()
    message = str(state.message)
    assert "binance/ohlcv/1h/2024-02-28" in message and "BTCUSDT" in message
    assert "now invalid" in message and "high<" in message and "stored rows kept" in message
    assert silver(warehouse_dir).equals(stored_silver)
    assert bronze(warehouse_dir).drop("fetched_at").equals(stored_bronze.drop("fetched_at"))


def test_a_deleted_partition_file_is_fetched_and_built_again(
    live: Any, warehouse_dir: Path
) -> None:
    """Injected: the bronze and silver files of a complete day removed by hand (coverage still
    says complete). Held: the next run (not forced) fetches and builds that day again, the
    same rows come back, and a run after that makes no request."""
    pick = {"exchanges": ["binance"], "symbols": ["BTCUSDT"]}
    assert backfill(**pick).is_completed()
    stored = silver(warehouse_dir)
    spec = PartitionSpec(exchange=Exchange.BINANCE, dataset="ohlcv", interval=Interval.H1, day=DAY)
    for layer in (Layer.BRONZE, Layer.SILVER):
        (warehouse_dir / PartitionKey.of(spec, layer).path).unlink()

    live.reset_stats()
    assert backfill(**pick).is_completed()
    assert live.stats()["binance"]["requests"] > 0
    assert silver(warehouse_dir).equals(stored)

    live.reset_stats()
    assert backfill(**pick).is_completed()
    assert requests(live) == 0


def test_a_day_missing_its_last_candle_is_fetched_again_until_complete(
    live: Any, warehouse_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Injected: yesterday fetched while Binance had not yet published its last 1h candle of
    BTCUSDT and served one candle of ETHUSDT with a bad value (quarantined). Held: both are
    recorded incomplete with the reason; the next run (not forced, the exchange caught up)
    fetches the day again and silver holds all 24 candles of each; a third run makes no
    request."""
    day = utc_today() - timedelta(days=1)
    pick = {"exchanges": ["binance"], "symbols": ["BTCUSDT", "ETHUSDT"]}

    def late(symbol: str, frame: pl.DataFrame) -> pl.DataFrame:
        if symbol == "BTCUSDT":
            return frame.head(frame.height - 1)
        bad = pl.int_range(pl.len()) == 3
        return frame.with_columns(
            pl.when(bad)
            .then(pl.lit("-1"))
            .otherwise(pl.col("low"))
            .cast(frame.schema["low"])
            .alias("low")
        )

    with monkeypatch.context() as patch:
        patch_ohlcv(patch, BinanceClient, late)
        assert backfill(day, **pick).is_completed()
    wh = Warehouse(str(warehouse_dir))
    records = wh.coverage.query(layer=Layer.BRONZE, start=day, end=day).sort("symbol")
    assert records.get_column("complete").to_list() == [False, False]
    reasons = records.get_column("gap_reason").to_list()
    assert "rows missing at the end of the day" in reasons[0]
    assert "1 rows quarantined" in reasons[1]
    assert silver(warehouse_dir).group_by("symbol").len().sort("symbol").get_column(
        "len"
    ).to_list() == [23, 23]

    live.reset_stats()
    assert backfill(day, **pick).is_completed()
    assert live.stats()["binance"]["requests"] > 0
    assert silver(warehouse_dir).group_by("symbol").len().get_column("len").to_list() == [24, 24]
    after = Warehouse(str(warehouse_dir)).coverage.query(start=day, end=day)
    assert after.get_column("complete").all()

    live.reset_stats()
    assert backfill(day, **pick).is_completed()
    assert requests(live) == 0


def test_a_day_still_incomplete_after_the_settle_period_is_a_recorded_source_gap(
    live: Any, warehouse_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Injected: Binance never serves yesterday's last 1h candle, with a settle period of 0
    days; and the sandbox's Binance maintenance window (2024-02-29 03:00-03:30) at 1m. Held:
    both days are recorded complete, as source gaps with their reason, and a re-run makes no
    request (no endless re-fetch)."""
    monkeypatch.setenv("CRYPTO_PIPELINE_SETTLE_DAYS", "0")
    day = utc_today() - timedelta(days=1)
    pick = {"exchanges": ["binance"], "symbols": ["BTCUSDT"]}
    with monkeypatch.context() as patch:
        patch_ohlcv(patch, BinanceClient, lambda _, frame: frame.head(frame.height - 1))
        assert backfill(day, **pick).is_completed()
    monkeypatch.setenv("CRYPTO_PIPELINE_SETTLE_DAYS", "3")
    maintenance = date(2024, 2, 29)
    assert backfill(maintenance, **pick, intervals=["1m"]).is_completed()

    records = Warehouse(str(warehouse_dir)).coverage.query(layer=Layer.BRONZE).sort("day")
    assert records.get_column("complete").to_list() == [True, True]
    assert records.get_column("rows_present").to_list() == [1410, 23]
    gap, settled = records.get_column("gap_reason").to_list()
    assert gap == "source gap: the exchange served later rows of the day"
    assert settled.startswith("source gap: rows missing at the end of the day")

    live.reset_stats()
    assert backfill(day, **pick).is_completed()
    assert backfill(maintenance, **pick, intervals=["1m"]).is_completed()
    assert requests(live) == 0


def test_a_derived_interval_asked_alone_fetches_its_source(live: Any, warehouse_dir: Path) -> None:
    """Injected: `--intervals 4h` alone on Coinbase, which serves no 4h candles. Held: the
    bronze plan fetches Coinbase 1h, and silver holds Coinbase 1h and the 4h resampled from it
    (6 candles of BTCUSDT)."""
    from models.settings import load_settings
    from storage.planning import plan

    selection = Selection(
        start=DAY,
        end=DAY,
        exchanges=["coinbase"],
        symbols=["BTCUSDT"],
        intervals=["4h"],
        datasets=["ohlcv"],
    )
    request = selection.resolve(load_settings())
    fetched = plan(Warehouse(str(warehouse_dir)), Layer.BRONZE, request)
    assert [(s.exchange, s.interval) for s in fetched] == [(Exchange.COINBASE, Interval.H1)]
    built = plan(Warehouse(str(warehouse_dir)), Layer.SILVER, request)
    assert [s.interval for s in built] == [Interval.H1, Interval.H4]

    assert backfill(exchanges=["coinbase"], symbols=["BTCUSDT"], intervals=["4h"]).is_completed()
    rows = silver(warehouse_dir).group_by("interval").len().sort("interval")
    counts = dict(rows.iter_rows())
    assert counts["4h"] == 6 and counts["1h"] > 0


def test_a_silver_rebuild_from_a_worse_bronze_keeps_the_stored_silver(
    live: Any, warehouse_dir: Path
) -> None:
    """Injected: after a good day, its bronze file replaced behind the pipeline's back by one
    where a BTCUSDT candle has high below low and an ETHUSDT candle is gone, then a forced
    silver rebuild of the day. Held: the rebuild is refused for both symbols (named, with
    why) and silver keeps every stored candle."""
    from tasks.silver_partition import write_partition

    assert backfill(exchanges=["binance"], symbols=["BTCUSDT", "ETHUSDT"]).is_completed()
    stored = silver(warehouse_dir)
    wh = Warehouse(str(warehouse_dir))
    spec = PartitionSpec(exchange=Exchange.BINANCE, dataset="ohlcv", interval=Interval.H1, day=DAY)
    raw = wh.read(PartitionKey.of(spec))
    assert raw is not None
    row = pl.int_range(pl.len()) == 2
    worse = raw.with_columns(
        pl.when(row).then(pl.col("low")).otherwise(pl.col("high")).alias("high"),
        pl.when(row).then(pl.col("high")).otherwise(pl.col("low")).alias("low"),
    ).filter(pl.int_range(pl.len()) != raw.height - 1)
    wh.write(PartitionKey.of(spec), worse, closed=True, force=True)

    built = write_partition(
        wh, spec, ["BTCUSDT", "ETHUSDT"], force=True, bronze_complete=lambda *_: True
    )
    error = str(built.summary.error)
    assert "BTCUSDT: 1 valid stored row(s) lost" in error and "now invalid" in error
    assert "ETHUSDT: 1 valid stored row(s) lost" in error and "1 absent" in error
    assert silver(warehouse_dir).equals(stored)
