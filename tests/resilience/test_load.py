"""Four backfills at once in one process share the clients' rate limiters: the sandbox, enforcing
the real limits, never has to answer 429."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from models.enums import Layer
from storage import Warehouse

pytestmark = pytest.mark.usefixtures("prefect_api")

FIRST = date(2024, 2, 20)


async def four_backfills() -> list[Any]:
    from flows.backfill import backfill_flow
    from models.selection import Selection

    return await asyncio.gather(
        *(
            backfill_flow(
                selection=Selection(
                    start=FIRST + timedelta(days=i),
                    end=FIRST + timedelta(days=i),
                    symbols=["BTCUSDT", "ETHUSDT"],
                    intervals=["1m", "5m", "15m"],
                    datasets=["ohlcv"],
                ),
                return_state=True,
            )
            for i in range(4)
        )
    )


def test_four_concurrent_backfills_never_draw_a_429(
    make_sandbox: Any, warehouse_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    strict = make_sandbox(seed=7, rate_limits="real")
    monkeypatch.setenv("CRYPTO_PIPELINE_SANDBOX_URL", strict.url)
    states = asyncio.run(four_backfills())
    assert all(s.is_completed() for s in states), [s.message for s in states]

    stats = strict.stats()
    # enough traffic to exceed OKX's 2-second windows and Coinbase's burst if not paced
    assert stats["okx"]["requests"] > 40 and stats["coinbase"]["requests"] > 30
    assert {name: s["rate_limited"] for name, s in stats.items()} == {
        "binance": 0,
        "coinbase": 0,
        "okx": 0,
    }
    ohlcv = Warehouse(str(warehouse_dir)).scan(Layer.SILVER, "ohlcv").collect()
    per_day = ohlcv.group_by(pl.col("ts").dt.date()).len()
    assert per_day.height == 4
