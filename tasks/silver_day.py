"""Silver for one day: its planned partitions in dependency order, then the aggregates.

A day (rather than a partition) is the unit of work, and a task builds a few days one after
another (`build_days`), keeping orchestration overhead small: a day of every exchange,
interval and dataset is a few tens of thousands of rows.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import polars as pl

from models.enums import Dataset, Exchange, Interval
from models.partitions import PartitionSpec
from storage import Warehouse
from storage.planning import BronzeComplete, bronze_complete_for
from tasks.context import RunContext
from tasks.progress import Progress
from tasks.runtime import settle_heap, shared_gate
from tasks.silver_partition import SilverSummary, build_aggregate, write_partition


def native_first(specs: Sequence[PartitionSpec]) -> list[PartitionSpec]:
    """Partitions built from bronze first, then those resampled from other silver
    (Coinbase 4h from its 1h), each group in the given order."""
    native = [s for s in specs if s.is_native]
    return native + [s for s in specs if not s.is_native]


def aggregate_intervals(specs: Sequence[PartitionSpec]) -> list[Interval]:
    """Candle intervals whose cross-exchange aggregate the specs' rebuild invalidates."""
    found = {s.interval for s in specs if s.dataset is Dataset.OHLCV and s.interval}
    return sorted(found, key=lambda i: i.ms)


@dataclass
class SilverDay:
    """What building one day did: a summary per partition and aggregate, failures named."""

    day: date
    partitions: list[SilverSummary] = field(default_factory=list)
    aggregates: list[SilverSummary] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


class SilverDayFailed(Exception):
    """Some partitions of the day failed; the rest were built. Carries the day's summary."""

    def __init__(self, result: SilverDay) -> None:
        self.result = result
        super().__init__(" | ".join(result.failures))

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (SilverDayFailed, (self.result,))


def build_day(
    day: date,
    specs: Sequence[PartitionSpec],
    symbols: Mapping[Dataset, Sequence[str]],
    *,
    warehouse: Warehouse,
    force: bool = False,
    bronze_complete: BronzeComplete | None = None,
    coverage_out: list[pl.DataFrame] | None = None,
) -> SilverDay:
    """Build the day's planned silver partitions, then the aggregates of the intervals they
    touch, from every exchange's silver of the day (not only the exchanges asked for).

    Every partition is attempted; a partition that raises, or whose write is refused (never
    shrink), is listed in `failures`. Raises `SilverDayFailed` at the end if any partition
    raised (so the task is retried); refused writes are reported, not retried. Bronze
    coverage is read once for the day (or given: `bronze_complete`, read once for several
    days by `build_days`), the day's silver coverage published in one upsert after its
    files (or, given `coverage_out`, appended there after its files for the caller to
    publish with other days'), and the aggregates take the candles just written from memory.
    """
    result = SilverDay(day=day)
    raised = False
    todays = [s for s in specs if s.day == day]
    if bronze_complete is None:
        bronze_complete = bronze_complete_for(warehouse, todays)  # one coverage read for the day
    coverage: list[pl.DataFrame] = []
    written: dict[Interval, dict[Exchange, pl.DataFrame]] = defaultdict(dict)
    try:
        for spec in native_first(todays):
            try:
                built = write_partition(
                    warehouse,
                    spec,
                    list(symbols[spec.dataset]),
                    force=force,
                    bronze_complete=bronze_complete,
                )
            except Exception as exc:
                raised = True
                result.failures.append(f"{spec.label}: {type(exc).__name__}: {exc}")
                continue
            result.partitions.append(built.summary)
            if built.summary.error:
                result.failures.append(f"{built.summary.partition}: {built.summary.error}")
            if built.coverage is not None:
                coverage.append(built.coverage)
            if spec.dataset is Dataset.OHLCV and spec.interval and built.data is not None:
                written[spec.interval][spec.exchange] = built.data
    finally:  # the day's coverage in one upsert, after its data files
        if coverage and coverage_out is not None:
            coverage_out.extend(coverage)
        elif coverage:
            warehouse.coverage.upsert(pl.concat(coverage, how="diagonal_relaxed"))
    for interval in aggregate_intervals(todays):
        label = f"aggregated/ohlcv/{interval.value}/{day}"
        try:
            summary = build_aggregate(interval, day, warehouse=warehouse, written=written[interval])
        except Exception as exc:
            raised = True
            result.failures.append(f"{label}: {type(exc).__name__}: {exc}")
            continue
        result.aggregates.append(summary)
    if raised:
        raise SilverDayFailed(result)
    return result


class SilverDaysFailed(Exception):
    """Some of several days failed (a partition raised); carries every day's result and the
    days that raised (the others were built whole)."""

    def __init__(self, results: list[SilverDay], raised: Sequence[date] = ()) -> None:
        self.results = results
        self.raised = sorted(raised)
        super().__init__(" | ".join(f for r in results for f in r.failures))

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (SilverDaysFailed, (self.results, self.raised))


# Days built at once in this process (threads), across all tasks holding days.
DAYS_AT_ONCE = 4


async def build_days(
    days: Sequence[date],
    specs: Sequence[PartitionSpec],
    symbols: Mapping[Dataset, Sequence[str]],
    *,
    ctx: RunContext,
    force: bool = False,
    days_at_once: int = DAYS_AT_ONCE,
    progress: Progress | None = None,
) -> list[SilverDay]:
    """`build_day` for each day in a thread, at most `days_at_once` at once in this process
    (a gate shared by every task); a failing day does not stop the others. Results in day
    order; raises `SilverDaysFailed` (every day's result) at the end if any day raised.

    Bronze coverage is read once for all the days (the bronze stage has ended: what it
    records complete stays so, bronze is never degraded), and the days' silver coverage is
    published in one upsert once every day has ended (after their files; a day that raised
    included): each upsert encodes and writes a file, ~4 % of silver's CPU when once a day."""
    settle_heap()
    bronze_complete = await asyncio.to_thread(bronze_complete_for, ctx.warehouse, specs)
    coverage: list[pl.DataFrame] = []

    async def one(day: date) -> SilverDay:
        async with shared_gate("silver-days", days_at_once):
            try:
                return await asyncio.to_thread(
                    build_day,
                    day,
                    specs,
                    symbols,
                    warehouse=ctx.warehouse,
                    force=force,
                    bronze_complete=bronze_complete,
                    coverage_out=coverage,
                )
            except SilverDayFailed as exc:
                failed.add(day)
                return exc.result
            finally:
                if progress is not None:
                    progress.report(sum(1 for s in specs if s.day == day))

    failed: set[date] = set()
    try:
        results = list(await asyncio.gather(*(one(day) for day in sorted(days))))
    finally:  # every day's coverage in one upsert, after their data files
        if coverage:
            records = pl.concat(coverage, how="diagonal_relaxed")
            await asyncio.to_thread(ctx.warehouse.coverage.upsert, records)
    if failed:
        raise SilverDaysFailed(results, sorted(failed))
    return results
