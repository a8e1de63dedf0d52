"""How a backfill's days are split into tasks: `tasks.chunks.day_chunks` and `chunk_specs`,
and the bronze fetch groups (one exchange's chunk of days per task), without Prefect."""

from __future__ import annotations

import math
from datetime import date, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from models.enums import Dataset, Exchange, Interval, Layer
from models.partitions import PartitionSpec
from models.selection import Selection
from models.settings import load_settings
from storage import Warehouse
from storage.planning import plan
from tasks.chunks import MAX_DAYS_PER_TASK, chunk_specs, day_chunks, fetch_groups

START = date(2024, 3, 4)


def days_from(offsets: list[int]) -> list[date]:
    return [START + timedelta(days=i) for i in offsets]


@given(
    offsets=st.lists(st.integers(0, 800), unique=True, max_size=400),
    max_days=st.integers(1, 10),
)
def test_chunks_partition_the_sorted_days_evenly(offsets: list[int], max_days: int) -> None:
    days = days_from(offsets)
    chunks = day_chunks(days, max_days)
    assert [d for chunk in chunks for d in chunk] == sorted(days)  # contiguous, in order
    assert len(chunks) == math.ceil(len(days) / max_days)  # as few as fit
    sizes = [len(c) for c in chunks]
    assert all(0 < size <= max_days for size in sizes)
    assert not sizes or max(sizes) - min(sizes) <= 1


def test_chunk_examples() -> None:
    assert day_chunks(days_from([0])) == [days_from([0])]
    assert [len(c) for c in day_chunks(days_from(list(range(14))))] == [14]
    assert [len(c) for c in day_chunks(days_from(list(range(32))))] == [16, 16]
    assert [len(c) for c in day_chunks(days_from(list(range(15))), 7)] == [5, 5, 5]
    year = day_chunks(days_from(list(range(366))))
    assert len(year) == 12 and max(len(c) for c in year) <= MAX_DAYS_PER_TASK == 31
    assert day_chunks([]) == []


def test_chunk_specs_keeps_each_days_specs_together() -> None:
    specs = [
        PartitionSpec(exchange=e, dataset=Dataset.OHLCV, interval=Interval.H1, day=d)
        for d in reversed(days_from(list(range(10))))
        for e in (Exchange.OKX, Exchange.BINANCE)
    ]
    chunks = chunk_specs(specs, max_days=5)  # 10 days: two chunks of 5
    assert [days for days, _ in chunks] == [
        days_from(list(range(5))),
        days_from(list(range(5, 10))),
    ]
    for days, group in chunks:
        assert {s.day for s in group} == set(days)
    assert sorted(s.label for _, g in chunks for s in g) == sorted(s.label for s in specs)


def test_a_six_week_plan_of_three_exchanges_is_six_fetch_tasks(tmp_path: Path) -> None:
    request = Selection.parse(
        start=START,
        end=START + timedelta(days=41),
        exchanges=["binance", "coinbase", "okx"],
        intervals=["1m", "1h"],
        datasets=["ohlcv", "funding"],
    ).resolve(load_settings())
    specs = plan(Warehouse(str(tmp_path)), Layer.BRONZE, request)
    groups = fetch_groups(specs)
    assert len(groups) == 6  # three weeks each, two per exchange
    for exchange, days, group in groups:
        assert {s.exchange for s in group} == {exchange}  # never mixes exchanges
        assert {s.day for s in group} == set(days)
    per_exchange = {
        e: [len(days) for x, days, _ in groups if x is e]
        for e in (Exchange.BINANCE, Exchange.COINBASE, Exchange.OKX)
    }
    assert per_exchange == {e: [21, 21] for e in per_exchange}
    assert sorted(s.label for _, _, g in groups for s in g) == sorted(s.label for s in specs)
