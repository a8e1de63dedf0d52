"""Child-process side of the concurrent coverage test (importable under the spawn start method)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from models.coverage import COVERAGE_SCHEMA

BASE_DAY = date(2024, 1, 1)
T0 = datetime(2024, 6, 1, tzinfo=UTC)


def record(symbol: str, day_index: int, worker: int) -> dict[str, Any]:
    """One coverage record; on overlapping keys worker 2 is newer on even days, 1 on odd."""
    newer = (worker == 2) == (day_index % 2 == 0)
    return {
        "layer": "silver",
        "dataset": "ohlcv",
        "exchange": "binance",
        "symbol": symbol,
        "interval": "1m",
        "day": BASE_DAY + timedelta(days=day_index),
        "rows_present": worker,
        "rows_expected": 1440,
        "gaps": [],
        "quarantined": 0,
        "closed": True,
        "complete": True,
        "updated_at": T0 + timedelta(seconds=day_index * 10 + (5 if newer else 0)),
    }


def worker_keys(worker: int) -> list[tuple[str, int]]:
    """Worker 1: BTC and ETH on days 0-29; worker 2: ETH and SOL on days 10-39."""
    if worker == 1:
        return [(s, d) for d in range(30) for s in ("BTCUSDT", "ETHUSDT")]
    return [(s, d) for d in range(10, 40) for s in ("ETHUSDT", "SOLUSDT")]


def run(uri: str, worker: int, batch: int, compact_every: int, barrier: Any) -> None:
    from storage import Warehouse

    index = Warehouse(uri).coverage
    index.compact_every = compact_every
    keys = worker_keys(worker)
    barrier.wait()
    for i in range(0, len(keys), batch):
        rows = [record(s, d, worker) for s, d in keys[i : i + batch]]
        index.upsert(pl.DataFrame(rows, schema=COVERAGE_SCHEMA))
