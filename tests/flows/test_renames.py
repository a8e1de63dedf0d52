"""A rename end to end (issue 17): the backfill flow across Binance's MATIC -> POL switch in
the sandbox's universe, then silver read as one series (`tasks.transform.renames`).

Injected: the sandbox's rename (`sandbox.universe`: MATICUSDT delisted 2024-09-10 03:00 UTC,
POLUSDT opened 2024-09-13 10:00 UTC, one asset traded 1:1). Held: a backfill asked for the
new name alone also lands the old listing's history (`models.aliases.former_names`) and
completes (each name's days outside its listing are unavailable at the source, not
failures); silver keeps each listing under its own symbol; followed from either name, silver
is one POLUSDT series whose minutes run without a hole except the rename gap, MATIC's up to
the delisting and POL's from the opening, values as the exchange served them."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from models.enums import Layer
from sandbox import universe
from storage import Warehouse
from tasks.transform.renames import LISTED_AS, follow_series, rename_gaps

pytestmark = pytest.mark.usefixtures("prefect_api")

START, END = date(2024, 9, 9), date(2024, 9, 14)  # the switch falls inside
DELISTED = datetime.fromisoformat(universe.MATIC_DELISTED).replace(tzinfo=UTC)
OPENED = datetime.fromisoformat(universe.POL_LISTED).replace(tzinfo=UTC)


def run_backfill(**params: Any) -> Any:
    from flows.backfill import backfill_flow
    from models.selection import Selection

    selection = Selection(
        start=START,
        end=END,
        exchanges=["binance"],
        symbols=["POLUSDT"],  # MATICUSDT comes with it: the range starts before the switch
        intervals=["1m", "1h"],
        datasets=["ohlcv"],
        **params,
    )
    return asyncio.run(backfill_flow(selection=selection, return_state=True))


def minutes(first: datetime, until: datetime) -> list[datetime]:
    return [first + timedelta(minutes=i) for i in range(int((until - first).total_seconds() // 60))]


def test_backfill_across_the_switch_reads_as_one_series(
    sandbox: Any, warehouse_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRYPTO_PIPELINE_SANDBOX_URL", sandbox.url)
    state = run_backfill()
    assert state.is_completed(), state.message
    assert rename_gaps("POLUSDT", "binance") == [(DELISTED, OPENED)]  # the sandbox's dates

    scan = Warehouse(str(warehouse_dir)).scan(Layer.SILVER, "ohlcv")
    silver = scan.collect()
    # Silver keeps each listing under the exchange's own symbol.
    assert set(silver.get_column("symbol")) == {"MATICUSDT", "POLUSDT"}
    matic = silver.filter(pl.col("symbol") == "MATICUSDT")
    assert matic.get_column("ts").max() < DELISTED
    assert silver.filter(pl.col("symbol") == "POLUSDT").get_column("ts").min() >= OPENED

    followed = follow_series(scan, "POLUSDT").collect()
    assert followed.equals(follow_series(scan, "MATICUSDT").collect())  # either name
    assert followed.height == silver.height  # every silver row, once
    assert set(followed.get_column("symbol")) == {"POLUSDT"}
    one_minute = followed.filter(pl.col("interval") == "1m")
    # Continuity: the sandbox serves every minute of a listing here (no maintenance gap in
    # this range), so the followed minutes are exactly the range less the rename gap.
    first = datetime(START.year, START.month, START.day, tzinfo=UTC)
    last = datetime(END.year, END.month, END.day, tzinfo=UTC) + timedelta(days=1)
    expected = minutes(first, DELISTED) + minutes(OPENED, last)
    assert one_minute.get_column("ts").to_list() == expected
    names = one_minute.get_column(LISTED_AS)
    assert names.to_list() == ["MATICUSDT"] * len(minutes(first, DELISTED)) + ["POLUSDT"] * len(
        minutes(OPENED, last)
    )
    # Values as served (the migration was 1:1): the followed rows are silver's rows.
    back = one_minute.drop(LISTED_AS).with_columns(pl.Series("symbol", names))
    assert back.sort("symbol", "ts").equals(
        silver.filter(pl.col("interval") == "1m").select(back.columns).sort("symbol", "ts")
    )
    # The same asset on both sides of the gap: POL opens near MATIC's last price.
    last_matic = one_minute.filter(pl.col("ts") < DELISTED).get_column("close").tail(1).item()
    first_pol = one_minute.filter(pl.col("ts") >= OPENED).get_column("open").head(1).item()
    assert abs(first_pol / last_matic - 1) < 0.25
