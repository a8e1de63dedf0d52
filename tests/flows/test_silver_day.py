"""`tasks.silver_day.build_day`: order of work within a day, and failures named without
stopping the rest of the day; `build_days`: several days (a few at once), a failing day not
stopping the others; the run name of their Prefect task."""

from __future__ import annotations

import asyncio
import pickle
from datetime import date, timedelta
from typing import Any

import pytest
from prefect._internal.engine import resolve_custom_task_run_name

from models.enums import Dataset, Exchange, Interval
from models.partitions import PartitionSpec
from models.settings import Settings
from tasks import silver_day
from tasks.context import RunContext
from tasks.prefect_tasks import build_silver_days_task
from tasks.silver_partition import BuiltPartition, SilverSummary

DAY = date(2024, 3, 4)
SYMBOLS = {Dataset.OHLCV: ["BTCUSDT"], Dataset.FUNDING: ["BTCUSDT"]}
CTX = RunContext(Settings(warehouse="unused"))


def spec(exchange: Exchange, interval: Interval | None, day: date = DAY) -> PartitionSpec:
    dataset = Dataset.OHLCV if interval else Dataset.FUNDING
    return PartitionSpec(exchange=exchange, dataset=dataset, interval=interval, day=day)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    done: list[str] = []

    def partition(_: Any, s: PartitionSpec, symbols: list[str], **__: Any) -> BuiltPartition:
        if s.exchange is Exchange.BINANCE and s.interval is Interval.H1:
            raise OSError("disk full")
        done.append(s.label)
        return BuiltPartition(SilverSummary(partition=s.label, rows=len(symbols)))

    def aggregate(interval: Interval, day: date, **_: Any) -> Any:
        done.append(f"aggregate {interval.value} {day}")
        return SilverSummary(partition=f"aggregated/ohlcv/{interval.value}/{day}", rows=1)

    monkeypatch.setattr(silver_day, "bronze_complete_for", lambda *_: lambda *__: True)
    monkeypatch.setattr(silver_day, "write_partition", partition)
    monkeypatch.setattr(silver_day, "build_aggregate", aggregate)
    return done


def test_native_then_resampled_then_aggregates(calls: list[str]) -> None:
    specs = [
        spec(Exchange.COINBASE, Interval.H4),  # resampled from Coinbase 1h: must come after it
        spec(Exchange.COINBASE, Interval.H1),
        spec(Exchange.BINANCE, None),
        spec(Exchange.BINANCE, Interval.H4, day=date(2024, 3, 5)),  # another day: not built
    ]
    result = silver_day.build_day(DAY, specs, SYMBOLS, warehouse=CTX.warehouse)
    assert calls == [
        "coinbase/ohlcv/1h/2024-03-04",
        "binance/funding/2024-03-04",
        "coinbase/ohlcv/4h/2024-03-04",
        "aggregate 1h 2024-03-04",
        "aggregate 4h 2024-03-04",
    ]
    assert [p.rows for p in result.partitions] == [1, 1, 1]
    assert len(result.aggregates) == 2 and result.failures == []


def test_a_failing_partition_is_named_and_the_rest_of_the_day_is_built(
    calls: list[str],
) -> None:
    specs = [spec(Exchange.BINANCE, Interval.H1), spec(Exchange.COINBASE, Interval.H1)]
    with pytest.raises(silver_day.SilverDayFailed) as failed:
        silver_day.build_day(DAY, specs, SYMBOLS, warehouse=CTX.warehouse)
    result = failed.value.result
    assert result.failures == ["binance/ohlcv/1h/2024-03-04: OSError: disk full"]
    assert [p.partition for p in result.partitions] == ["coinbase/ohlcv/1h/2024-03-04"]
    assert calls[-1].startswith("aggregate 1h")  # the aggregate is still rebuilt
    assert "binance/ohlcv/1h/2024-03-04" in str(failed.value)
    again = pickle.loads(pickle.dumps(failed.value))  # crosses process boundaries intact
    assert again.result == result and str(again) == str(failed.value)


def test_build_days_keeps_the_good_days_when_one_raises(calls: list[str]) -> None:
    days = [DAY + timedelta(days=i) for i in range(3)]
    bad = days[1]
    specs = [spec(Exchange.COINBASE, Interval.H1, day=d) for d in days]
    specs.append(spec(Exchange.BINANCE, Interval.H1, day=bad))  # raises (see `calls`)
    with pytest.raises(silver_day.SilverDaysFailed) as failed:
        asyncio.run(silver_day.build_days(list(reversed(days)), specs, SYMBOLS, ctx=CTX))
    results = failed.value.results
    assert [r.day for r in results] == days  # in order, the day after the failure built too
    assert [len(r.partitions) for r in results] == [1, 1, 1]
    assert [len(r.aggregates) for r in results] == [1, 1, 1]
    assert [r.failures for r in results] == [
        [],
        [f"binance/ohlcv/1h/{bad}: OSError: disk full"],
        [],
    ]
    assert str(failed.value) == f"binance/ohlcv/1h/{bad}: OSError: disk full"
    again = pickle.loads(pickle.dumps(failed.value))
    assert again.results == results and str(again) == str(failed.value)


def test_build_days_returns_every_day_when_none_raises(calls: list[str]) -> None:
    days = [DAY, DAY + timedelta(days=1)]
    specs = [spec(Exchange.COINBASE, Interval.H1, day=d) for d in days]
    results = asyncio.run(silver_day.build_days(days, specs, SYMBOLS, ctx=CTX))
    assert [(r.day, len(r.partitions), r.failures) for r in results] == [
        (days[0], 1, []),
        (days[1], 1, []),
    ]


def test_build_days_publishes_every_days_coverage_in_one_upsert(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One coverage upsert for all the days, after their files, a day that raised included."""
    import polars as pl

    events: list[str] = []

    def partition(_: Any, s: PartitionSpec, symbols: list[str], **__: Any) -> BuiltPartition:
        if s.exchange is Exchange.BINANCE:
            raise OSError("disk full")
        events.append(f"write {s.day}")
        record = pl.DataFrame({"symbol": symbols, "day": [s.day] * len(symbols)})
        return BuiltPartition(SilverSummary(partition=s.label), coverage=record)

    class Coverage:
        def upsert(self, records: pl.DataFrame) -> None:
            events.append(f"upsert {sorted(records.get_column('day').to_list())}")

    class Warehouse:
        coverage = Coverage()

    class Ctx:
        warehouse = Warehouse()

    monkeypatch.setattr(silver_day, "bronze_complete_for", lambda *_: lambda *__: True)
    monkeypatch.setattr(silver_day, "write_partition", partition)
    monkeypatch.setattr(silver_day, "build_aggregate", lambda *_, **__: SilverSummary("agg"))
    days = [DAY, DAY + timedelta(days=1)]
    specs = [spec(Exchange.COINBASE, Interval.H1, day=d) for d in days]
    specs.append(spec(Exchange.BINANCE, Interval.H1, day=days[1]))
    with pytest.raises(silver_day.SilverDaysFailed):
        asyncio.run(silver_day.build_days(days, specs, SYMBOLS, ctx=Ctx()))  # type: ignore[arg-type]
    assert sorted(events[:2]) == [f"write {days[0]}", f"write {days[1]}"]
    assert events[2:] == [f"upsert {days}"]


def test_run_name_names_the_days() -> None:
    one = {"days": [DAY]}
    assert resolve_custom_task_run_name(build_silver_days_task, one) == "silver 2024-03-04"
    several = {"days": [date(2024, 3, 7), DAY]}
    assert (
        resolve_custom_task_run_name(build_silver_days_task, several)
        == "silver 2024-03-04..2024-03-07"
    )


def test_build_days_builds_a_few_days_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    lock = threading.Lock()
    state = {"running": 0, "peak": 0}

    def day(d: date, *_: Any, **__: Any) -> silver_day.SilverDay:
        with lock:
            state["running"] += 1
            state["peak"] = max(state["peak"], state["running"])
        time.sleep(0.05)  # long enough for the next day to start meanwhile
        with lock:
            state["running"] -= 1
        return silver_day.SilverDay(day=d)

    monkeypatch.setattr(silver_day, "build_day", day)
    days = [DAY + timedelta(days=i) for i in range(7)]

    async def run() -> list[list[silver_day.SilverDay]]:
        calls = [  # two tasks' worth of days at the same time share the gate
            silver_day.build_days(chunk, [], SYMBOLS, ctx=CTX, days_at_once=2)
            for chunk in (days[:4], days[4:])
        ]
        return list(await asyncio.gather(*calls))

    results = asyncio.run(run())
    assert [[r.day for r in chunk] for chunk in results] == [days[:4], days[4:]]
    assert state["peak"] == 2


@pytest.mark.parametrize("fails", [1, 2], ids=["retry-succeeds", "retry-fails-too"])
def test_a_retry_builds_only_the_days_that_raised(
    monkeypatch: pytest.MonkeyPatch, fails: int
) -> None:
    """The silver stage builds a unit's days that raised again (once), and only them."""
    from models.selection import Selection
    from tasks import silver_stage
    from tasks.progress import Progress
    from tasks.units import DIRECT

    days = [DAY + timedelta(days=i) for i in range(3)]
    bad = days[1]
    built: list[date] = []

    def build_day(day: date, *_: Any, **__: Any) -> silver_day.SilverDay:
        built.append(day)
        if day == bad and built.count(bad) <= fails:
            raise silver_day.SilverDayFailed(silver_day.SilverDay(day=day, failures=["boom"]))
        return silver_day.SilverDay(day=day, partitions=[SilverSummary(partition=str(day))])

    monkeypatch.setattr(silver_day, "build_day", build_day)
    request = Selection(start=days[0], end=days[-1]).resolve(CTX.settings)
    results, errors = asyncio.run(
        silver_stage._build_chunk(days, [], request, CTX, DIRECT, Progress("silver"))
    )
    assert sorted(built) == sorted([*days, bad])  # the retry built the failed day only
    assert errors == []
    assert [r.day for r in results] == days  # every day reported
    if fails == 1:
        assert all(not r.failures for r in results)
    else:
        assert [r.day for r in results if r.failures] == [bad]
