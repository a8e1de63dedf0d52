"""Silver for one day: its planned partitions in dependency order, then the aggregates.

One unit of work per day (rather than one per partition) keeps orchestration overhead small:
a day of every exchange, interval and dataset is a few tens of thousands of rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from models.enums import Dataset, Exchange, Interval
from models.requests import NATIVE_INTERVALS, PartitionSpec
from tasks.silver import build_aggregate, build_partition


def native_first(specs: Sequence[PartitionSpec]) -> list[PartitionSpec]:
    """Partitions built from bronze first, then those resampled from other silver
    (Coinbase 4h from its 1h), each group in the given order."""
    native = [s for s in specs if s.interval is None or s.interval in NATIVE_INTERVALS[s.exchange]]
    return native + [s for s in specs if s not in native]


def aggregate_intervals(specs: Sequence[PartitionSpec]) -> list[Interval]:
    """Candle intervals whose cross-exchange aggregate the specs' rebuild invalidates."""
    found = {s.interval for s in specs if s.dataset is Dataset.OHLCV and s.interval}
    return sorted(found, key=lambda i: i.ms)


@dataclass
class SilverDay:
    """What building one day did: a summary per partition and aggregate, failures named."""

    day: date
    partitions: list[dict[str, Any]] = field(default_factory=list)
    aggregates: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class SilverDayFailed(Exception):
    """Some partitions of the day failed; the rest were built. Carries the day's summary."""

    def __init__(self, result: SilverDay) -> None:
        self.result = result
        super().__init__(" | ".join(result.failures))


def build_day(
    day: date,
    specs: Sequence[PartitionSpec],
    symbols: Mapping[Dataset, Sequence[str]],
    exchanges: Sequence[Exchange],
    *,
    warehouse_uri: str,
    force: bool = False,
) -> SilverDay:
    """Build the day's planned silver partitions, then its aggregates across `exchanges`.

    Every partition is attempted; a partition that raises, or whose write is refused (never
    shrink), is listed in `failures`. Raises `SilverDayFailed` at the end if any partition
    raised (so the task is retried); refused writes are reported, not retried.
    """
    result = SilverDay(day=day)
    raised = False
    todays = [s for s in specs if s.day == day]
    for spec in native_first(todays):
        try:
            summary = build_partition(
                spec, list(symbols[spec.dataset]), warehouse_uri=warehouse_uri, force=force
            )
        except Exception as exc:
            raised = True
            result.failures.append(f"{spec.label}: {type(exc).__name__}: {exc}")
            continue
        result.partitions.append(summary.as_dict())
        if summary.error:
            result.failures.append(f"{summary.partition}: {summary.error}")
    for interval in aggregate_intervals(todays):
        label = f"aggregated/ohlcv/{interval.value}/{day}"
        try:
            summary = build_aggregate(interval, day, list(exchanges), warehouse_uri=warehouse_uri)
        except Exception as exc:
            raised = True
            result.failures.append(f"{label}: {type(exc).__name__}: {exc}")
            continue
        result.aggregates.append(summary.as_dict())
    if raised:
        raise SilverDayFailed(result)
    return result
