"""Units of work, and how a stage runs them: directly in this process, or as Prefect tasks.

The stages (`tasks.bronze_stage`, `tasks.silver_stage`) plan and group partitions, then hand
each group to a `Units`; `DIRECT` calls the task bodies here (tests, benchmarks),
`tasks.prefect_tasks.PrefectUnits` runs them as Prefect task runs with retries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Protocol

from models.enums import Dataset, Exchange
from models.partitions import PartitionSpec
from tasks import bronze, silver_day
from tasks.context import RunContext
from tasks.progress import Progress


class Units(Protocol):
    """Runs one unit of work of each kind; raises what the unit raised."""

    async def fetch_instruments(
        self, exchanges: Sequence[Exchange], ctx: RunContext
    ) -> list[bronze.FetchSummary]: ...

    async def fetch_days(
        self,
        exchange: Exchange,
        days: Sequence[date],
        specs: Sequence[PartitionSpec],
        symbols: Mapping[Dataset, Sequence[str]],
        ctx: RunContext,
        *,
        force: bool,
        repair: Sequence[PartitionSpec],
        progress: Progress | None,
    ) -> list[bronze.FetchSummary]: ...

    async def build_silver_days(
        self,
        days: Sequence[date],
        specs: Sequence[PartitionSpec],
        symbols: Mapping[Dataset, Sequence[str]],
        ctx: RunContext,
        *,
        force: bool,
        progress: Progress | None,
    ) -> list[silver_day.SilverDay]: ...


class DirectUnits:
    """The task bodies, called in this process without Prefect (no retries)."""

    async def fetch_instruments(
        self, exchanges: Sequence[Exchange], ctx: RunContext
    ) -> list[bronze.FetchSummary]:
        return await bronze.fetch_all_instruments(exchanges, ctx=ctx)

    async def fetch_days(
        self,
        exchange: Exchange,
        days: Sequence[date],
        specs: Sequence[PartitionSpec],
        symbols: Mapping[Dataset, Sequence[str]],
        ctx: RunContext,
        *,
        force: bool,
        repair: Sequence[PartitionSpec],
        progress: Progress | None,
    ) -> list[bronze.FetchSummary]:
        return await bronze.fetch_days(
            specs, symbols, ctx=ctx, force=force, repair=repair, progress=progress
        )

    async def build_silver_days(
        self,
        days: Sequence[date],
        specs: Sequence[PartitionSpec],
        symbols: Mapping[Dataset, Sequence[str]],
        ctx: RunContext,
        *,
        force: bool,
        progress: Progress | None,
    ) -> list[silver_day.SilverDay]:
        return await silver_day.build_days(
            days, specs, symbols, ctx=ctx, force=force, progress=progress
        )


DIRECT: Units = DirectUnits()
