"""The backfill flow end to end against the sandbox, on the shared Prefect test server."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from models.enums import Layer
from storage import Warehouse

pytestmark = pytest.mark.usefixtures("prefect_api")

DAYS = (date(2024, 2, 28), date(2024, 2, 29))
SELECTION: dict[str, Any] = {
    "symbols": ["BTCUSDT", "ETHUSDT"],
    "intervals": ["1m", "1h", "4h", "1d"],
}


def run_backfill(**params: Any) -> Any:
    from flows.backfill import backfill_flow
    from models.selection import Selection

    params = {"start": DAYS[0], "end": DAYS[1], **SELECTION, **params}
    return asyncio.run(backfill_flow(selection=Selection(**params), return_state=True))


def requests_made(server: Any) -> int:
    return sum(int(v.get("requests", 0)) for v in server.stats().values())


def test_backfill_lands_every_silver_dataset_and_rerun_makes_no_requests(
    sandbox: Any, warehouse_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRYPTO_PIPELINE_SANDBOX_URL", sandbox.url)
    state = run_backfill()
    assert state.is_completed(), state.message

    wh = Warehouse(str(warehouse_dir))
    ohlcv = wh.scan(Layer.SILVER, "ohlcv").collect()
    assert set(ohlcv["exchange"].unique()) == {"binance", "coinbase", "okx"}
    assert set(ohlcv["symbol"].unique()) == {"BTCUSDT", "ETHUSDT"}
    assert set(ohlcv["interval"].unique()) == {"1m", "1h", "4h", "1d"}
    assert ohlcv.select(pl.struct("exchange", "symbol", "interval", "ts").is_unique().all()).item()
    # coinbase 4h exists although the exchange has no 4h candles (resampled from 1h)
    assert not ohlcv.filter(
        (pl.col("exchange") == "coinbase") & (pl.col("interval") == "4h")
    ).is_empty()
    aggregated = wh.scan(Layer.SILVER, "ohlcv_aggregated").collect()
    assert not aggregated.is_empty()
    funding = wh.scan(Layer.SILVER, "funding").collect()
    assert set(funding["exchange"].unique()) >= {"binance"}
    instruments = wh.scan(Layer.SILVER, "instruments").collect()
    assert {"spot", "perp"} <= set(instruments["kind"].unique())

    # 1h candles equal the aggregate of their 1m candles (per exchange and symbol)
    minute = ohlcv.filter(pl.col("interval") == "1m")
    rebuilt = (
        minute.sort("ts")
        .group_by("exchange", "symbol", pl.col("ts").dt.truncate("1h"))
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
        )
        .sort("exchange", "symbol", "ts")
    )
    hourly = (
        ohlcv.filter(pl.col("interval") == "1h")
        .select("exchange", "symbol", "ts", "open", "high", "low", "close", "volume")
        .sort("exchange", "symbol", "ts")
    )
    joined = hourly.join(rebuilt, on=["exchange", "symbol", "ts"], suffix="_1m")
    assert joined.height == hourly.height
    for col in ("open", "high", "low", "close"):
        assert (joined[col] - joined[f"{col}_1m"]).abs().max() < 1e-9 * joined[col].abs().max()
    assert ((joined["volume"] - joined["volume_1m"]).abs() / joined["volume"]).max() < 1e-9

    coverage = wh.coverage.query(layer=Layer.SILVER, dataset="ohlcv")
    assert coverage.filter(~pl.col("complete")).is_empty()

    sandbox.reset_stats()
    again = run_backfill()
    assert again.is_completed(), again.message
    assert requests_made(sandbox) == 0


def test_partial_failure_names_the_culprit_and_rerun_fetches_only_it(
    make_sandbox: Any, warehouse_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = make_sandbox(fail={("okx", "ETHUSDT")})
    monkeypatch.setenv("CRYPTO_PIPELINE_SANDBOX_URL", broken.url)
    state = run_backfill(intervals=["1h"], datasets=["ohlcv"])
    assert state.is_failed()
    assert "okx" in state.message and "ETHUSDT" in state.message
    wh = Warehouse(str(warehouse_dir))
    ohlcv = wh.scan(Layer.SILVER, "ohlcv").collect()
    landed = set(ohlcv.select("exchange", "symbol").unique().iter_rows())
    assert ("okx", "BTCUSDT") in landed and ("binance", "ETHUSDT") in landed
    assert ("okx", "ETHUSDT") not in landed

    healthy = make_sandbox()
    monkeypatch.setenv("CRYPTO_PIPELINE_SANDBOX_URL", healthy.url)
    again = run_backfill(intervals=["1h"], datasets=["ohlcv"])
    assert again.is_completed(), again.message
    stats = healthy.stats()
    assert int(stats.get("binance", {}).get("requests", 0)) == 0
    assert int(stats.get("coinbase", {}).get("requests", 0)) == 0
    assert int(stats.get("okx", {}).get("requests", 0)) > 0
    ohlcv = Warehouse(str(warehouse_dir)).scan(Layer.SILVER, "ohlcv").collect()
    assert ("okx", "ETHUSDT") in set(ohlcv.select("exchange", "symbol").unique().iter_rows())


def test_a_new_warehouse_at_the_same_path_is_filled_again(
    sandbox: Any, warehouse_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Results of earlier runs never stand in for data a (wiped) warehouse does not hold."""
    import shutil

    monkeypatch.setenv("CRYPTO_PIPELINE_SANDBOX_URL", sandbox.url)
    small = {"end": DAYS[0], "symbols": ["BTCUSDT"], "intervals": ["1d"], "datasets": ["ohlcv"]}
    assert run_backfill(**small).is_completed()
    shutil.rmtree(warehouse_dir)
    sandbox.reset_stats()
    state = run_backfill(**small)
    assert state.is_completed(), state.message
    assert requests_made(sandbox) > 0
    ohlcv = Warehouse(str(warehouse_dir)).scan(Layer.SILVER, "ohlcv").collect()
    assert set(ohlcv["exchange"].unique()) == {"binance", "coinbase", "okx"}


def test_progress_moves_as_each_day_of_a_task_ends(
    sandbox: Any, warehouse_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One fetch task and one silver task hold both days; progress still moves per day."""
    from tasks import progress

    monkeypatch.setenv("CRYPTO_PIPELINE_SANDBOX_URL", sandbox.url)
    seen: dict[str, list[tuple[int, int]]] = {}
    unsubscribe = progress.subscribe(
        lambda p: seen.setdefault(p.stage, []).append((p.done, p.total))
    )
    try:
        state = run_backfill(exchanges=["binance"], intervals=["1m", "1h"], datasets=["ohlcv"])
    finally:
        unsubscribe()
    assert state.is_completed(), state.message
    for stage in ("bronze", "silver"):
        total = seen[stage][-1][1]
        assert total == 4  # 2 days x 2 intervals, in one task
        done = [d for d, _ in seen[stage]]
        assert done[-1] == total and 2 in done, (stage, done)  # the first day, then both
        assert done == sorted(done)
