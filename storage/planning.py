"""Planning: what the coverage index and the stored files say is still to do.

The one place that answers "which partitions of a request are missing, incomplete or
damaged", for bronze (what to fetch) and silver (what to build); runs, retries, backfills and
reports all ask here.

Every (symbol, day) of a series is in one of three states (`models.coverage`): *complete*,
*unavailable at the source* (with the reason: before the listing, beyond the source's depth,
delisted, not listed) or *missing*. Planning re-requests only missing ones (`--force`: all);
`source_states` reports the three per exchange, dataset and symbol.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl

from models.dates import DateRange
from models.enums import Dataset, Exchange, Interval, Layer
from models.partitions import PartitionSpec
from models.selection import RunRequest
from storage.coverage import merge_days
from storage.layout import DATE_COLUMN, PartitionKey
from storage.warehouse import Warehouse

# Threads reading stored files back when planning (pyarrow decodes outside the GIL).
VALIDATE_THREADS = 8

StatusKey = tuple[str, str, str | None, date]
# The coverage columns naming a partition (`StatusKey`).
STATUS_COLUMNS = ("exchange", "dataset", "interval", "day")


def status_key(spec: PartitionSpec) -> StatusKey:
    """How coverage records name a partition: (exchange, dataset, interval, day)."""
    return (
        spec.exchange.value,
        spec.dataset.value,
        spec.interval.value if spec.interval else None,
        spec.day,
    )


@dataclass
class CoverageStatus:
    """What the coverage index says about a range of days of one layer (one query)."""

    complete: dict[StatusKey, set[str]] = field(default_factory=lambda: defaultdict(set))
    # symbol -> reason, of the symbols the partition is recorded unavailable at the source for
    unavailable: dict[StatusKey, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    stamps: dict[StatusKey, set[str]] = field(default_factory=lambda: defaultdict(set))
    rows: dict[StatusKey, int] = field(default_factory=lambda: defaultdict(int))
    records: pl.DataFrame = field(default_factory=pl.DataFrame)

    def complete_symbols(self, spec: PartitionSpec) -> set[str]:
        """The symbols the partition is recorded complete for."""
        return self.complete.get(status_key(spec), set())

    def unavailable_symbols(self, spec: PartitionSpec) -> dict[str, str]:
        """The symbols the partition is recorded unavailable at the source for, with why."""
        return self.unavailable.get(status_key(spec), {})

    def done_symbols(self, spec: PartitionSpec) -> set[str]:
        """The symbols nothing is left to fetch for: complete, or unavailable at the source."""
        return self.complete_symbols(spec) | set(self.unavailable_symbols(spec))


def coverage_status(
    warehouse: Warehouse, layer: Layer, start: date, end: date, **series: str | None
) -> CoverageStatus:
    """Complete symbols and recorded file stamps per partition of `layer` in [start, end]
    (of one series only, with `dataset`, `exchange`, `interval`)."""
    records = warehouse.coverage.query(layer=layer, start=start, end=end, **series)
    status = CoverageStatus(records=records)
    if records.is_empty():
        return status
    complete = pl.col("complete").fill_null(False)
    gone = ~complete & pl.col("unavailable").is_not_null()
    grouped = records.group_by(STATUS_COLUMNS).agg(
        pl.col("symbol").filter(complete).alias("complete"),
        pl.col("symbol").filter(gone).alias("gone"),
        pl.col("unavailable").filter(gone).alias("why"),
        pl.col("file_stamp").drop_nulls().alias("stamps"),
        pl.col("rows_present").fill_null(0).sum().alias("rows"),
    )
    for (
        exchange,
        dataset,
        interval,
        day,
        done,
        gone_symbols,
        why,
        stamps,
        rows,
    ) in grouped.iter_rows():
        key = (exchange, dataset, interval, day)
        if done:
            status.complete[key] = set(done)
        if gone_symbols:
            status.unavailable[key] = dict(zip(gone_symbols, why, strict=True))
        if stamps:
            status.stamps[key] = set(stamps)
        status.rows[key] = rows
    return status


def recorded_complete(
    warehouse: Warehouse, specs: Sequence[PartitionSpec], layer: Layer = Layer.BRONZE
) -> dict[PartitionSpec, set[str]]:
    """Per partition, the symbols nothing is left to fetch for (one index read): recorded
    complete, or unavailable at the source (never fetched again but by `--force`)."""
    if not specs:
        return {}
    days = [spec.day for spec in specs]
    status = coverage_status(warehouse, layer, min(days), max(days))
    return {spec: status.done_symbols(spec) for spec in specs}


class BronzeComplete:
    """What bronze holds of partitions, from one read of the index: called with a partition
    and symbols, whether each of them is complete or unavailable at the source;
    `unavailable(spec)` the symbols unavailable at the source, with why (silver records them
    so too)."""

    def __init__(self, status: CoverageStatus) -> None:
        self._status = status

    def __call__(self, spec: PartitionSpec, symbols: Sequence[str]) -> bool:
        return set(symbols) <= self._status.done_symbols(spec)

    def unavailable(self, spec: PartitionSpec) -> dict[str, str]:
        return self._status.unavailable_symbols(spec)


def bronze_complete_for(warehouse: Warehouse, specs: Sequence[PartitionSpec]) -> BronzeComplete:
    """`BronzeComplete` of `specs` and the sources of those derived from another interval,
    from one read of the index."""
    every = [*specs, *(s.source() for s in specs if not s.is_native)]
    if not every:
        return BronzeComplete(CoverageStatus())
    days = [spec.day for spec in every]
    return BronzeComplete(coverage_status(warehouse, Layer.BRONZE, min(days), max(days)))


class Plan(list[PartitionSpec]):
    """Partitions still to do; `damaged` maps those recorded complete whose stored file does
    not read back (truncated, corrupted) or is gone to the reason, so they are redone."""

    def __init__(
        self, specs: Sequence[PartitionSpec], damaged: dict[PartitionSpec, str] | None = None
    ) -> None:
        super().__init__(specs)
        self.damaged = damaged or {}


def _record_checked_stamps(
    warehouse: Warehouse, records: pl.DataFrame, checked: dict[StatusKey, str]
) -> None:
    """Re-publish the coverage records of files that read back whole, with their stamp.

    `updated_at` is kept, so a record written meanwhile by a newer fetch still wins.
    """
    if not checked or records.is_empty():
        return
    stamps = pl.DataFrame(
        [(*key, stamp) for key, stamp in checked.items()],
        schema={
            "exchange": pl.String(),
            "dataset": pl.String(),
            "interval": pl.String(),
            "day": pl.Date(),
            "checked_stamp": pl.String(),
        },
        orient="row",
    )
    restamped = records.join(
        stamps, on=["exchange", "dataset", "interval", "day"], how="inner", nulls_equal=True
    ).with_columns(pl.col("checked_stamp").alias("file_stamp"))
    if not restamped.is_empty():
        warehouse.coverage.upsert(restamped.drop("checked_stamp"))


Series = tuple[Exchange, Dataset, Interval | None]


def _series(request: RunRequest, *, derived: bool) -> list[Series]:
    """The (exchange, dataset, interval) of each partition of one day of `request`, in the
    order `RunRequest.partitions` yields them (every day has the same)."""
    first = request.days.start
    out: list[Series] = []
    for spec in request.partitions(derived=derived):
        if spec.day != first:
            break
        out.append((spec.exchange, spec.dataset, spec.interval))
    return out


def _path_parts(
    request: RunRequest, layer: Layer, series: Sequence[Series]
) -> list[tuple[str, str]]:
    """Per series, the text of its files' paths before and after the day (`2024-03-04`), as
    the layout (`PartitionKey.path`) builds them: a path is then one concatenation a day."""
    first = request.days.start
    marker = f"{DATE_COLUMN}={first.isoformat()}"
    parts = []
    for exchange, dataset, interval in series:
        spec = PartitionSpec(exchange=exchange, dataset=dataset, interval=interval, day=first)
        head, tail = PartitionKey.of(spec, layer).path.split(marker)
        parts.append((f"{head}{DATE_COLUMN}=", tail))
    return parts


# What the index says of one partition: all requested symbols done, rows recorded, file stamps.
_Recorded = tuple[bool, int, list[str]]


def _recorded(records: pl.DataFrame, request: RunRequest) -> dict[StatusKey, _Recorded]:
    """Per partition the records name (`StatusKey`): whether every symbol the request asks
    of its dataset is complete or unavailable at the source, the rows recorded present and
    the file stamps recorded (one Polars query; a Python step per partition, not per record)."""
    if records.is_empty():
        return {}
    wanted = pl.DataFrame(
        [(d.value, symbol) for d in request.datasets for symbol in set(request.symbols_for(d))],
        schema={"dataset": pl.String(), "symbol": pl.String()},
        orient="row",
    )
    needed = wanted.lazy().group_by("dataset").agg(pl.len().cast(pl.Int64).alias("_needed"))
    done = pl.col("complete").fill_null(False) | pl.col("unavailable").is_not_null()
    per = (
        records.lazy()
        .join(wanted.lazy().with_columns(_asked=pl.lit(True)), on=["dataset", "symbol"], how="left")
        .group_by(STATUS_COLUMNS)
        .agg(
            pl.col("symbol").filter(done & pl.col("_asked").is_not_null()).n_unique().alias("_n"),
            pl.col("rows_present").fill_null(0).sum().alias("_rows"),
            pl.col("file_stamp").drop_nulls().unique().alias("_stamps"),
        )
        .join(needed, on="dataset", how="left")
        .select(
            *STATUS_COLUMNS,
            (pl.col("_n") >= pl.col("_needed").fill_null(0)).alias("_done"),
            "_rows",
            "_stamps",
        )
        .collect()
    )
    return {
        (exchange, dataset, interval, day): (done_, rows, stamps)
        for exchange, dataset, interval, day, done_, rows, stamps in per.iter_rows()
    }


def plan(warehouse: Warehouse, layer: Layer, request: RunRequest) -> Plan:
    """Partitions of `request` still to do for `layer` (bronze: to fetch; silver: to build):
    every one if forced, else those not complete or unavailable at the source for every
    requested symbol, or whose stored file is damaged (named in `Plan.damaged`).

    A partition recorded done is damaged when its file is gone though coverage records rows
    (or a file) for it: a missing file is missing, whatever the index says; or when its file
    fails `Warehouse.validate`. A file still carrying a stamp recorded in coverage when it was
    written (or last checked) is the whole file that was written and is not read back; the
    others are read back in threads, and those that pass get their stamp recorded so the next
    plan skips them. The existence check is the same `stat` (`Store.stamps`): no file is
    opened for it. The index is reduced to one entry per partition by Polars, and partitions
    are walked as plain tuples and path strings: a `PartitionSpec` is made only for those to
    do, so a re-run of a long complete history costs little more than a `stat` per file."""
    derived = layer is not Layer.BRONZE
    if request.force:
        return Plan(list(request.partitions(derived=derived)))
    series = _series(request, derived=derived)
    if not series:
        return Plan([])
    records = warehouse.coverage.query(layer=layer, start=request.days.start, end=request.days.end)
    recorded = _recorded(records, request)
    names = [(e.value, d.value, i.value if i else None) for e, d, i in series]
    parts = _path_parts(request, layer, series)
    grid = [
        (day, index, f"{head}{day.isoformat()}{tail}")
        for day in request.days.days()
        for index, (head, tail) in enumerate(parts)
    ]
    current = warehouse.store.stamps([path for _, _, path in grid])
    nothing: _Recorded = (False, 0, [])

    def spec_of(day: date, index: int) -> PartitionSpec:
        exchange, dataset, interval = series[index]
        return PartitionSpec(exchange=exchange, dataset=dataset, interval=interval, day=day)

    todo: list[PartitionSpec] = []
    damaged: dict[PartitionSpec, str] = {}
    suspect: list[tuple[PartitionSpec, str, str]] = []  # (spec, path, current stamp)
    for day, index, path in grid:
        done, rows, stamps = recorded.get((*names[index], day), nothing)
        if not done:
            todo.append(spec_of(day, index))
            continue
        stamp = current.get(path)
        if stamp is None:
            if rows > 0 or stamps:
                spec = spec_of(day, index)
                todo.append(spec)
                damaged[spec] = (
                    f"missing: no file at {warehouse.store.uri(path)} though coverage records "
                    "its rows"
                )
        elif stamp not in stamps:
            spec = spec_of(day, index)
            todo.append(spec)
            suspect.append((spec, path, stamp))
    if suspect:

        def check(item: tuple[PartitionSpec, str, str]) -> str | None:
            return warehouse.validate(PartitionKey.of(item[0], layer))

        with ThreadPoolExecutor(max_workers=VALIDATE_THREADS) as pool:
            problems = list(pool.map(check, suspect))
        checked = {}
        for (spec, _, stamp), why in zip(suspect, problems, strict=True):
            if why:
                damaged[spec] = why
            else:
                checked[status_key(spec)] = stamp
        _record_checked_stamps(warehouse, records, checked)
        passed = {spec for spec, _, _ in suspect} - set(damaged)
        todo = [spec for spec in todo if spec not in passed]
    return Plan(todo, damaged)


def missing_days(
    warehouse: Warehouse,
    *,
    layer: Layer | str,
    dataset: str,
    exchange: str,
    interval: str | None,
    symbols: Sequence[str],
    days: DateRange,
) -> list[date]:
    """Days of one series (exchange, dataset, interval) in `days` that the index does not
    record complete or unavailable at the source for every symbol (the test `plan` makes)."""
    status = coverage_status(
        warehouse,
        Layer(str(layer)),
        days.start,
        days.end,
        dataset=dataset,
        exchange=exchange,
        interval=interval,
    )
    series = PartitionSpec(
        exchange=Exchange(exchange),
        dataset=Dataset(dataset),
        interval=Interval(interval) if interval else None,
        day=days.start,
    )
    wanted = set(symbols)
    return [
        day
        for day in days.days()
        if not wanted <= status.done_symbols(series.model_copy(update={"day": day}))
    ]


def missing_intervals(warehouse: Warehouse, **series: Any) -> list[tuple[date, date]]:
    """`missing_days` merged into inclusive [start, end] ranges."""
    return merge_days(missing_days(warehouse, **series))


def describe(specs: Sequence[PartitionSpec]) -> list[str]:
    """Planned partitions as one line per series with its day ranges, for run logs:
    `binance/ohlcv/1m: 2024-01-01..2024-01-05, 2024-01-09`."""
    by_series: dict[str, list[date]] = defaultdict(list)
    for spec in specs:
        by_series[spec.label.rsplit("/", 1)[0]].append(spec.day)
    return [
        f"{series}: " + ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in merge_days(days))
        for series, days in sorted(by_series.items())
    ]


STATE_COLUMNS = pl.Schema(
    {
        "exchange": pl.String(),
        "dataset": pl.String(),
        "interval": pl.String(),
        "symbol": pl.String(),
        "complete_days": pl.Int64(),
        "missing_days": pl.Int64(),
        "unavailable_days": pl.Int64(),
        "first_day": pl.Date(),  # the first day with data (rows present), if any
        "last_day": pl.Date(),  # the last day with data
        "unavailable": pl.String(),  # reasons with their day ranges, "; "-separated
    }
)


def source_states(
    warehouse: Warehouse,
    *,
    layer: Layer | str = Layer.BRONZE,
    dataset: str | None = None,
    exchange: str | None = None,
    symbol: str | None = None,
    start: date | None = None,
    end: date | None = None,
) -> pl.DataFrame:
    """The three coverage states per exchange, dataset, interval and symbol, for reports
    (`STATE_COLUMNS`): days complete, missing and unavailable at the source, the first and
    last day with data, and each reason of unavailability with its day ranges
    (`beyond the source's depth (1,440 h): 2023-01-01..2024-10-01`).

    Days are those the index records (a day never fetched has no record); with both `start`
    and `end`, every day of that range counts, a day without a record as missing."""
    records = warehouse.coverage.query(
        layer=layer, dataset=dataset, exchange=exchange, symbol=symbol, start=start, end=end
    )
    if records.is_empty():
        return pl.DataFrame(schema=STATE_COLUMNS)
    group = ["exchange", "dataset", "interval", "symbol"]
    has_data = pl.col("rows_present").fill_null(0) > 0
    unavailable = pl.col("unavailable").is_not_null() & ~pl.col("complete")
    table = records.group_by(group).agg(
        pl.col("complete").sum().cast(pl.Int64).alias("complete_days"),
        unavailable.sum().cast(pl.Int64).alias("unavailable_days"),
        pl.len().cast(pl.Int64).alias("_recorded"),
        pl.col("day").filter(has_data).min().alias("first_day"),
        pl.col("day").filter(has_data).max().alias("last_day"),
    )
    span = (end - start).days + 1 if start is not None and end is not None else None
    total = pl.lit(span, pl.Int64) if span is not None else pl.col("_recorded")
    table = table.with_columns(
        (total - pl.col("complete_days") - pl.col("unavailable_days")).alias("missing_days")
    )
    reasons: dict[tuple[object, ...], list[str]] = defaultdict(list)
    gone = records.filter(unavailable).select(*group, "unavailable", "day")
    for key, frame in gone.group_by([*group, "unavailable"], maintain_order=True):
        ranges = merge_days(frame.get_column("day").to_list())
        spans = ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in ranges)
        reasons[tuple(key[:-1])].append(f"{key[-1]}: {spans}")
    text = [
        "; ".join(reasons.get(tuple(row), [])) or None for row in table.select(group).iter_rows()
    ]
    table = table.with_columns(pl.Series("unavailable", text, dtype=pl.String()))
    return table.select(STATE_COLUMNS.names()).cast(STATE_COLUMNS).sort(group, nulls_last=False)


def describe_states(states: pl.DataFrame) -> list[str]:
    """`source_states` as one line per series and symbol, e.g. `okx open_interest BTCUSDT:
    from 2024-10-02; 60 complete, 0 missing, 670 unavailable (beyond the source's depth
    (1,440 h): 2023-01-01..2024-10-01)`."""
    lines = []
    for row in states.iter_rows(named=True):
        series = " ".join(
            str(row[c]) for c in ("exchange", "dataset", "interval", "symbol") if row[c]
        )
        since = f"from {row['first_day']}" if row["first_day"] else "no data"
        counts = (
            f"{row['complete_days']} complete, {row['missing_days']} missing, "
            f"{row['unavailable_days']} unavailable"
        )
        why = f" ({row['unavailable']})" if row["unavailable"] else ""
        lines.append(f"{series}: {since}; {counts}{why}")
    return lines
