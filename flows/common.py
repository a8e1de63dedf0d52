"""Planning and execution helpers shared by the layer flows."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl

from models.enums import Dataset, Exchange, Layer
from models.requests import PartitionSpec, RunRequest
from storage import Warehouse

# Partitions of one exchange processed at once; the clients' rate limiters set the pace.
PER_EXCHANGE_CONCURRENCY = 4


@dataclass
class Outcome:
    """Results of running one task per partition: summaries and named failures."""

    summaries: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def extend(self, other: Outcome) -> None:
        self.summaries.extend(other.summaries)
        self.failures.extend(other.failures)


class PipelineFailed(Exception):
    """Raised at the end of a flow whose partitions partly failed; names each failure."""

    @classmethod
    def raise_for(cls, layer: str, report: dict[str, Any]) -> None:
        failures = report.get("failures") or []
        if failures:
            raise cls(f"{len(failures)} {layer} partition(s) failed: " + " | ".join(failures))


def coverage_status(
    warehouse: Warehouse, layer: Layer, request: RunRequest
) -> dict[tuple[str, str, str | None, date], set[str]]:
    """Complete symbols per (exchange, dataset, interval, day), from one coverage query."""
    records = warehouse.coverage.query(layer=layer, start=request.days.start, end=request.days.end)
    out: dict[tuple[str, str, str | None, date], set[str]] = defaultdict(set)
    if records.is_empty():
        return out
    done = records.filter(pl.col("complete")).select(
        "exchange", "dataset", "interval", "day", "symbol"
    )
    for exchange, dataset, interval, day, symbol in done.iter_rows():
        out[(exchange, dataset, interval, day)].add(symbol)
    return out


def _status_key(spec: PartitionSpec) -> tuple[str, str, str | None, date]:
    return (
        spec.exchange.value,
        spec.dataset.value,
        spec.interval.value if spec.interval else None,
        spec.day,
    )


def plan(warehouse: Warehouse, layer: Layer, request: RunRequest) -> list[PartitionSpec]:
    """Partitions still to do for `layer`: every one if forced, else those not complete."""
    specs = list(request.partitions(derived=layer is not Layer.BRONZE))
    if request.force:
        return specs
    status = coverage_status(warehouse, layer, request)
    return [
        spec
        for spec in specs
        if not set(request.symbols_for(spec.dataset)) <= status.get(_status_key(spec), set())
    ]


async def describe_failure(spec_label: str, state: Any) -> str:
    """A one-line reason for a failed task state naming the partition (and symbols)."""
    try:
        await state.aresult()
    except Exception as exc:  # the task's own exception carries names
        text = str(exc)
        return text if text.startswith(spec_label) else f"{spec_label}: {text}"
    return f"{spec_label}: {state.message or state.name}"


async def run_bounded(
    specs: Sequence[PartitionSpec],
    call: Callable[[PartitionSpec], Awaitable[Any]],
    *,
    on_done: Callable[[PartitionSpec, Any], None] | None = None,
    per_exchange: int = PER_EXCHANGE_CONCURRENCY,
) -> Outcome:
    """Run `call(spec)` (returning a Prefect State) with bounded concurrency per exchange."""
    limits: dict[Exchange, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(per_exchange))
    outcome = Outcome()

    async def one(spec: PartitionSpec) -> None:
        async with limits[spec.exchange]:
            state = await call(spec)
        if state.is_completed():
            outcome.summaries.append(await state.aresult())
        else:
            outcome.failures.append(await describe_failure(spec.label, state))
        if on_done is not None:
            on_done(spec, state)

    await asyncio.gather(*(one(spec) for spec in specs))
    return outcome


def summary_table(summaries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for a table artifact: one per partition, small and readable."""
    rows = []
    for s in summaries:
        rows.append(
            {
                "partition": s.get("partition"),
                "rows": s.get("rows", 0),
                "gaps": s.get("gaps", ""),
                "quarantined": s.get("quarantined", ""),
                "not_listed": ", ".join(s.get("symbols_not_listed", []) or []),
            }
        )
    return sorted(rows, key=lambda r: str(r["partition"]))


def datasets_in(request: RunRequest) -> list[Dataset]:
    return list(request.datasets)
