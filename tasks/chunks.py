"""How planned partitions are grouped into units of work: contiguous chunks of days, one
exchange per fetch unit, so each task run pays Prefect's per-run overhead for many days."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, timedelta

from models.enums import Exchange
from models.partitions import PartitionSpec

# Most days one unit holds (a month): a year is 12 units per exchange, not 53. A retry redoes
# only what failed: fetch skips the days recorded complete, silver rebuilds the days that raised.
MAX_DAYS_PER_TASK = 31


def day_chunks(days: Sequence[date], max_days: int = MAX_DAYS_PER_TASK) -> list[list[date]]:
    """The sorted days in as few contiguous chunks of at most `max_days` as possible, their
    sizes differing by at most one: with 7, 14 days are two chunks of 7, 15 days 5 + 5 + 5."""
    ordered = sorted(days)
    if not ordered:
        return []
    count = math.ceil(len(ordered) / max_days)
    size, larger = divmod(len(ordered), count)
    chunks: list[list[date]] = []
    start = 0
    for i in range(count):
        end = start + size + (1 if i < larger else 0)
        chunks.append(ordered[start:end])
        start = end
    return chunks


def chunk_specs(
    specs: Sequence[PartitionSpec], max_days: int = MAX_DAYS_PER_TASK
) -> list[tuple[list[date], list[PartitionSpec]]]:
    """The specs' days in `day_chunks`, each chunk with its specs (in their given order)."""
    chunks = day_chunks(sorted({s.day for s in specs}), max_days)
    which = {day: i for i, chunk in enumerate(chunks) for day in chunk}
    grouped: list[list[PartitionSpec]] = [[] for _ in chunks]
    for spec in specs:
        grouped[which[spec.day]].append(spec)
    return list(zip(chunks, grouped, strict=True))


FetchGroup = tuple[Exchange, list[date], list[PartitionSpec]]


def fetch_groups(specs: Sequence[PartitionSpec]) -> list[FetchGroup]:
    """One group per fetch unit: each exchange's planned days in `day_chunks`, with their
    specs. Units never mix exchanges, so each exchange's rate limit paces only its own."""
    by_exchange: dict[Exchange, list[PartitionSpec]] = {}
    for spec in specs:
        by_exchange.setdefault(spec.exchange, []).append(spec)
    return [
        (exchange, days, group)
        for exchange, exchange_specs in sorted(by_exchange.items())
        for days, group in chunk_specs(exchange_specs)
    ]


def chunk_ranges(start: date, end: date, chunk_days: int) -> list[tuple[date, date]]:
    """Split an inclusive range into consecutive inclusive chunks of `chunk_days` days."""
    if chunk_days < 1:
        return [(start, end)]
    out = []
    day = start
    while day <= end:
        last = min(end, day + timedelta(days=chunk_days - 1))
        out.append((day, last))
        day = last + timedelta(days=1)
    return out


def day_span(days: Sequence[date]) -> str:
    """`2024-03-04` for one day, `2024-03-04..2024-03-07` for several (first and last)."""
    ordered = sorted(days)
    if len(ordered) <= 1:
        return "".join(map(str, ordered))
    return f"{ordered[0]}..{ordered[-1]}"
