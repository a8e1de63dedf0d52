"""`tasks.bronze.fetch_day` (one exchange's day, several partitions) and the closed-day cache
key of its Prefect task, against the sandbox, without Prefect."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from models.dates import utc_today
from models.enums import Dataset, Exchange, Interval
from models.requests import PartitionSpec
from tasks import bronze
from tasks.prefect_tasks import closed_day_cache_key
from tasks.runtime import close_clients

DAY = date(2024, 2, 28)
SYMBOLS = {Dataset.OHLCV: ["BTCUSDT", "ETHUSDT"]}


def spec(interval: Interval, day: date = DAY) -> PartitionSpec:
    return PartitionSpec(exchange=Exchange.OKX, dataset=Dataset.OHLCV, interval=interval, day=day)


def fetch(specs: list[PartitionSpec], warehouse: Path, url: str) -> list[bronze.FetchSummary]:
    async def run() -> list[bronze.FetchSummary]:
        try:
            return await bronze.fetch_day(
                specs, SYMBOLS, warehouse_uri=str(warehouse), sandbox_url=url
            )
        finally:
            await close_clients()

    return asyncio.run(run())


def cache_key(specs: list[PartitionSpec], warehouse: Path, **extra: Any) -> str | None:
    context: Any = SimpleNamespace(task=SimpleNamespace(name="fetch-day"))
    parameters = {"specs": specs, "symbols": SYMBOLS, "warehouse_uri": str(warehouse), **extra}
    return closed_day_cache_key(context, parameters)


def test_one_failing_symbol_names_its_partitions_and_the_rest_is_stored(
    make_sandbox: Any, tmp_path: Path
) -> None:
    broken = make_sandbox(fail={("okx", "ETHUSDT")})
    specs = [spec(Interval.H1), spec(Interval.D1)]
    with pytest.raises(bronze.DayFetchFailed) as failed:
        fetch(specs, tmp_path, broken.url)
    errors = failed.value.errors
    assert len(errors) == 2 and all("ETHUSDT" in e for e in errors)
    assert {e.split(":")[0] for e in errors} == {s.label for s in specs}
    assert failed.value.retryable  # an outage, not a client error
    assert sorted(s.partition for s in failed.value.summaries) == sorted(s.label for s in specs)
    assert all(s.symbols_fetched == ["BTCUSDT"] for s in failed.value.summaries)


def test_cache_key_only_for_closed_days_held_complete(sandbox: Any, tmp_path: Path) -> None:
    specs = [spec(Interval.H1), spec(Interval.D1)]
    assert cache_key(specs, tmp_path) is None  # nothing stored yet
    summaries = fetch(specs, tmp_path, sandbox.url)
    assert [s.rows for s in summaries] == [48, 2]
    key = cache_key(specs, tmp_path)
    assert key is not None and key == cache_key(list(reversed(specs)), tmp_path)
    assert cache_key(specs[:1], tmp_path) not in (None, key)
    assert cache_key(specs, tmp_path, force=True) is None
    assert cache_key(specs, tmp_path, repair=specs[:1]) is None
    assert cache_key([*specs, spec(Interval.M15)], tmp_path) is None  # one partition missing
    today = [spec(Interval.H1, day=utc_today())]
    assert cache_key(today, tmp_path) is None
    assert cache_key([spec(Interval.H1, day=utc_today() - timedelta(days=1))], tmp_path) is None
