"""`tasks.bronze.fetch_day` (one exchange's day, several partitions), `fetch_days` (several
days, a few of an exchange at once across tasks) and the run name of their Prefect task,
against the sandbox, without a Prefect server."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Awaitable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect._internal.engine import resolve_custom_task_run_name

from clients.protocol import ExchangeUnavailable
from models.enums import Dataset, Exchange, Interval
from models.partitions import PartitionSpec
from models.settings import load_settings
from storage import Warehouse
from storage.planning import recorded_complete
from tasks import bronze
from tasks.context import RunContext
from tasks.prefect_tasks import fetch_days_task

DAY = date(2024, 2, 28)
SYMBOLS = {Dataset.OHLCV: ["BTCUSDT", "ETHUSDT"]}


def spec(interval: Interval, day: date = DAY) -> PartitionSpec:
    return PartitionSpec(exchange=Exchange.OKX, dataset=Dataset.OHLCV, interval=interval, day=day)


def context(warehouse: Path, url: str | None = None) -> RunContext:
    return RunContext(load_settings(warehouse=str(warehouse), sandbox_url=url))


def run_closing(
    fetching: Awaitable[list[bronze.FetchSummary]], ctx: RunContext
) -> list[bronze.FetchSummary]:
    """Run a fetch to its end, then close the run's clients of its event loop."""

    async def run() -> list[bronze.FetchSummary]:
        try:
            return await fetching
        finally:
            await ctx.aclose()

    return asyncio.run(run())


def fetch(specs: list[PartitionSpec], warehouse: Path, url: str) -> list[bronze.FetchSummary]:
    ctx = context(warehouse, url)
    return run_closing(bronze.fetch_day(specs, SYMBOLS, ctx=ctx), ctx)


def fetch_several(
    specs: list[PartitionSpec], warehouse: Path, url: str
) -> list[bronze.FetchSummary]:
    ctx = context(warehouse, url)
    return run_closing(bronze.fetch_days(specs, SYMBOLS, ctx=ctx), ctx)


def complete_symbols(warehouse: Warehouse, s: PartitionSpec, symbols: list[str]) -> set[str]:
    return recorded_complete(warehouse, [s])[s] & set(symbols)


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


def test_fetch_days_goes_on_after_a_failing_day(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One symbol of the middle day fails: the next day is still fetched and stored, and the
    failure names the partition and symbol."""
    bad = DAY + timedelta(days=1)
    real = bronze._fetch_symbol
    fetched_days: list[date] = []

    async def flaky(client: Any, s: PartitionSpec, symbol: str) -> Any:
        fetched_days.append(s.day)
        if s.day == bad and symbol == "ETHUSDT":
            raise ExchangeUnavailable("HTTP 503", exchange="okx", endpoint="candles")
        return await real(client, s, symbol)

    monkeypatch.setattr(bronze, "_fetch_symbol", flaky)
    days = [DAY + timedelta(days=i) for i in range(3)]
    specs = [spec(iv, day=d) for d in reversed(days) for iv in (Interval.H1, Interval.D1)]
    with pytest.raises(bronze.DayFetchFailed) as failed:
        fetch_several(specs, tmp_path, sandbox.url)
    assert sorted(set(fetched_days)) == days  # every day attempted
    errors = failed.value.errors
    assert [e.split(":")[0] for e in errors] == [f"okx/ohlcv/1h/{bad}", f"okx/ohlcv/1d/{bad}"]
    assert all("ETHUSDT" in e and "HTTP 503" in e for e in errors)
    assert failed.value.retryable
    summaries = {s.partition: s for s in failed.value.summaries}
    assert sorted(summaries) == sorted(s.label for s in specs)
    assert summaries[f"okx/ohlcv/1h/{bad}"].symbols_fetched == ["BTCUSDT"]

    warehouse = Warehouse(str(tmp_path))
    for s in specs:
        done = complete_symbols(warehouse, s, SYMBOLS[Dataset.OHLCV])
        assert done == ({"BTCUSDT"} if s.day == bad else {"BTCUSDT", "ETHUSDT"}), s.label
    monkeypatch.setattr(bronze, "_fetch_symbol", real)
    fetched_days.clear()
    summaries_again = fetch_several(specs, tmp_path, sandbox.url)  # a retry: only what failed
    refetched = [s for s in summaries_again if s.symbols_fetched]
    assert {s.partition for s in refetched} == {f"okx/ohlcv/1h/{bad}", f"okx/ohlcv/1d/{bad}"}
    assert all(s.symbols_fetched == ["ETHUSDT"] for s in refetched)


def test_fetch_days_names_a_day_that_raised_and_keeps_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = DAY + timedelta(days=1)
    seen: list[date] = []

    async def day(specs: list[PartitionSpec], *_: Any, **__: Any) -> list[bronze.FetchSummary]:
        seen.append(specs[0].day)
        if specs[0].day == bad:
            raise RuntimeError("no client")
        return [bronze.FetchSummary(partition=s.label, rows=1) for s in specs]

    monkeypatch.setattr(bronze, "fetch_day", day)
    specs = [spec(Interval.D1, day=DAY + timedelta(days=i)) for i in range(3)]
    with pytest.raises(bronze.DayFetchFailed) as failed:
        fetch_several(specs, tmp_path, "unused")
    assert seen == [s.day for s in specs]
    assert failed.value.errors == [f"okx/{bad}: RuntimeError: no client"]
    assert [s.partition for s in failed.value.summaries] == [specs[0].label, specs[2].label]
    assert failed.value.retryable


def test_fetch_days_lets_cancellation_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[date] = []

    async def day(specs: list[PartitionSpec], *_: Any, **__: Any) -> list[bronze.FetchSummary]:
        seen.append(specs[0].day)
        raise asyncio.CancelledError

    monkeypatch.setattr(bronze, "fetch_day", day)
    specs = [spec(Interval.D1, day=DAY + timedelta(days=i)) for i in range(2)]
    with pytest.raises(asyncio.CancelledError):
        fetch_several(specs, tmp_path, "unused")
    assert DAY in seen


def test_days_of_an_exchange_are_fetched_a_few_at_once_across_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    running: dict[Exchange, int] = {e: 0 for e in Exchange}
    peak: dict[Exchange, int] = {e: 0 for e in Exchange}

    async def day(specs: list[PartitionSpec], *_: Any, **__: Any) -> list[bronze.FetchSummary]:
        exchange = specs[0].exchange
        running[exchange] += 1
        peak[exchange] = max(peak[exchange], running[exchange])
        await asyncio.sleep(0.01)
        running[exchange] -= 1
        return [bronze.FetchSummary(partition=specs[0].label)]

    def days_of(exchange: Exchange, first: int) -> list[PartitionSpec]:
        return [
            PartitionSpec(
                exchange=exchange,
                dataset=Dataset.OHLCV,
                interval=Interval.H1,
                day=DAY + timedelta(days=first + i),
            )
            for i in range(7)
        ]

    ctx = context(Path("unused"))

    async def run() -> list[list[bronze.FetchSummary]]:
        calls = [  # two tasks' worth of Binance days, one of OKX, at the same time
            bronze.fetch_days(s, SYMBOLS, ctx=ctx, days_at_once=3)
            for s in (
                days_of(Exchange.BINANCE, 0),
                days_of(Exchange.BINANCE, 7),
                days_of(Exchange.OKX, 0),
            )
        ]
        return list(await asyncio.gather(*calls))

    monkeypatch.setattr(bronze, "fetch_day", day)
    results = asyncio.run(run())
    assert [len(r) for r in results] == [7, 7, 7]
    assert peak[Exchange.BINANCE] == 3  # shared by both calls, not 3 each
    assert peak[Exchange.OKX] == 3  # not held back by Binance's gate


def test_fetch_days_failure_survives_pickling() -> None:
    failed = bronze.DayFetchFailed(
        [bronze.FetchSummary(partition="okx/ohlcv/1d/2024-02-29")],
        ["okx/ohlcv/1d/2024-02-29: ETHUSDT: HTTP 503"],
    )
    again = pickle.loads(pickle.dumps(failed))
    assert again.errors == failed.errors and again.summaries == failed.summaries


def test_run_name_names_the_exchange_and_its_days() -> None:
    params: dict[str, Any] = {"exchange": Exchange.BINANCE, "days": [date(2024, 3, 4)]}
    assert resolve_custom_task_run_name(fetch_days_task, params) == "fetch binance 2024-03-04"
    params["days"] = [date(2024, 3, 7), date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 6)]
    assert (
        resolve_custom_task_run_name(fetch_days_task, params)
        == "fetch binance 2024-03-04..2024-03-07"
    )


def test_fetch_days_publishes_its_coverage_in_one_upsert_after_the_files(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three days x two intervals: six files, then one coverage upsert naming all six."""
    from storage.coverage import CoverageIndex

    upserts: list[tuple[int, int]] = []  # (records, bronze files present at that moment)
    real_upsert = CoverageIndex.upsert

    def counting(self: CoverageIndex, records: Any) -> None:
        files = len(list((tmp_path / "bronze").rglob("*.parquet")))
        upserts.append((records.height, files))
        real_upsert(self, records)

    monkeypatch.setattr(CoverageIndex, "upsert", counting)
    days = [DAY + timedelta(days=i) for i in range(3)]
    specs = [spec(iv, day=d) for d in days for iv in (Interval.H1, Interval.D1)]
    fetch_several(specs, tmp_path, sandbox.url)
    assert upserts == [(6 * 2, 6)]  # 6 partitions x 2 symbols, after all 6 files
    warehouse = Warehouse(str(tmp_path))
    for s in specs:
        assert complete_symbols(warehouse, s, SYMBOLS[Dataset.OHLCV]) == {
            "BTCUSDT",
            "ETHUSDT",
        }


def test_instruments_of_all_exchanges_in_one_call_and_a_failing_one_is_named(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = bronze.fetch_instruments

    async def okx_down(exchange: Exchange, **kwargs: Any) -> Any:
        if exchange is Exchange.OKX:
            raise ExchangeUnavailable("HTTP 503", exchange="okx", endpoint="instruments")
        return await real(exchange, **kwargs)

    monkeypatch.setattr(bronze, "fetch_instruments", okx_down)
    exchanges = [Exchange.BINANCE, Exchange.COINBASE, Exchange.OKX]

    ctx = context(tmp_path, sandbox.url)
    with pytest.raises(bronze.InstrumentsFailed) as failed:
        run_closing(bronze.fetch_all_instruments(exchanges, ctx=ctx), ctx)
    assert [e.split(":")[0] for e in failed.value.errors] == ["okx/instruments"]
    assert "HTTP 503" in failed.value.errors[0]
    stored = sorted(s.partition.split("/")[0] for s in failed.value.summaries)
    assert stored == ["binance", "coinbase"]
    assert all(s.rows and s.rows > 0 for s in failed.value.summaries)
    again = pickle.loads(pickle.dumps(failed.value))  # crosses process boundaries intact
    assert again.errors == failed.value.errors and len(again.summaries) == 2
