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


def _partition_grid(request: RunRequest, layer: Layer, series: Sequence[Series]) -> pl.DataFrame:
    """One row per partition of `request` (`STATUS_COLUMNS`, `_series` its index in `series`,
    `path` its file), in the order `RunRequest.partitions` yields them: built per series and
    day by Polars, the layout's path asked of `PartitionKey` once per series."""
    first = request.days.start
    prefixes = []
    for exchange, dataset, interval in series:
        spec = PartitionSpec(exchange=exchange, dataset=dataset, interval=interval, day=first)
        path = PartitionKey.of(spec, layer).path
        marker = f"{DATE_COLUMN}={first.isoformat()}"
        head, tail = path.split(marker)
        prefixes.append((head + f"{DATE_COLUMN}=", tail))
    per_series = pl.DataFrame(
        {
            "exchange": [e.value for e, _, _ in series],
            "dataset": [d.value for _, d, _ in series],
            "interval": [i.value if i else None for _, _, i in series],
            "_series": list(range(len(series))),
            "_head": [head for head, _ in prefixes],
            "_tail": [tail for _, tail in prefixes],
        },
        schema_overrides={"interval": pl.String(), "_series": pl.Int64()},
    )
    days = pl.date_range(request.days.start, request.days.end, "1d", eager=True).alias("day")
    return (
        days.to_frame()
        .join(per_series, how="cross")
        .sort("day", "_series")
        .select(
            *STATUS_COLUMNS,
            "_series",
            pl.concat_str("_head", pl.col("day").dt.strftime("%Y-%m-%d"), "_tail").alias("path"),
        )
    )


def _done_per_partition(records: pl.DataFrame, request: RunRequest) -> pl.DataFrame:
    """Per partition the records name (`STATUS_COLUMNS`): `_done`, whether every symbol the
    request asks of its dataset is complete or unavailable at the source; `_rows`, the rows
    recorded present; `_stamps`, the file stamps recorded."""
    wanted = pl.DataFrame(
        [(d.value, symbol) for d in request.datasets for symbol in set(request.symbols_for(d))],
        schema={"dataset": pl.String(), "symbol": pl.String()},
        orient="row",
    )
    needed = wanted.group_by("dataset").agg(pl.len().cast(pl.Int64).alias("_needed"))
    done = pl.col("complete").fill_null(False) | pl.col("unavailable").is_not_null()
    per = (
        records.join(wanted.with_columns(_asked=pl.lit(True)), on=["dataset", "symbol"], how="left")
        .group_by(STATUS_COLUMNS)
        .agg(
            pl.col("symbol").filter(done & pl.col("_asked").is_not_null()).n_unique().alias("_n"),
            pl.col("rows_present").fill_null(0).sum().alias("_rows"),
            pl.col("file_stamp").drop_nulls().unique().alias("_stamps"),
        )
    )
    return per.join(needed, on="dataset", how="left").select(
        *STATUS_COLUMNS,
        (pl.col("_n") >= pl.col("_needed").fill_null(0)).alias("_done"),
        "_rows",
        "_stamps",
    )


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
    opened for it. Partitions are judged in Polars, one row each; a `PartitionSpec` is made
    only for those to do, so a re-run of a long complete history costs a `stat` per file."""
    derived = layer is not Layer.BRONZE
    if request.force:
        return Plan(list(request.partitions(derived=derived)))
    series = _series(request, derived=derived)
    if not series:
        return Plan([])
    grid = _partition_grid(request, layer, series)
    records = warehouse.coverage.query(layer=layer, start=request.days.start, end=request.days.end)
    if records.is_empty():
        per = pl.DataFrame(
            schema={
                **dict.fromkeys(STATUS_COLUMNS, pl.String()),
                "day": pl.Date(),
                "_done": pl.Boolean(),
                "_rows": pl.Int64(),
                "_stamps": pl.List(pl.String()),
            }
        )
    else:
        per = _done_per_partition(records, request)
    paths = grid.get_column("path").to_list()
    current = warehouse.store.stamps(paths)
    grid = grid.join(per, on=list(STATUS_COLUMNS), how="left", nulls_equal=True).with_columns(
        pl.Series("_current", [current.get(p) for p in paths], dtype=pl.String()),
        pl.col("_done").fill_null(False),
    )
    known = pl.col("_stamps").list.contains(pl.col("_current")).fill_null(False)
    grid = grid.with_columns(
        (
            pl.col("_done")
            & pl.col("_current").is_null()
            & ((pl.col("_rows").fill_null(0) > 0) | (pl.col("_stamps").list.len() > 0))
        )
        .fill_null(False)
        .alias("_gone"),
        (pl.col("_done") & pl.col("_current").is_not_null() & ~known).alias("_suspect"),
    )
    todo = grid.filter(~pl.col("_done") | pl.col("_gone") | pl.col("_suspect"))
    if todo.is_empty():
        return Plan([])

    def spec_of(row: dict[str, Any]) -> PartitionSpec:
        exchange, dataset, interval = series[row["_series"]]
        return PartitionSpec(exchange=exchange, dataset=dataset, interval=interval, day=row["day"])

    rows = todo.select("_series", "day", "path", "_done", "_gone", "_suspect", "_current")
    specs = [(spec_of(row), row) for row in rows.iter_rows(named=True)]
    damaged = {
        spec: f"missing: no file at {warehouse.store.uri(row['path'])} though coverage "
        "records its rows"
        for spec, row in specs
        if row["_gone"]
    }
    suspect = [(spec, row) for spec, row in specs if row["_suspect"]]

    def check(item: tuple[PartitionSpec, dict[str, Any]]) -> str | None:
        return warehouse.validate(PartitionKey.of(item[0], layer))

    if suspect:
        with ThreadPoolExecutor(max_workers=VALIDATE_THREADS) as pool:
            problems = list(pool.map(check, suspect))
        damaged.update((spec, why) for (spec, _), why in zip(suspect, problems, strict=True) if why)
        checked = {
            status_key(spec): row["_current"]
            for (spec, row), why in zip(suspect, problems, strict=True)
            if not why
        }
        _record_checked_stamps(warehouse, records, checked)
    return Plan([spec for spec, row in specs if not row["_done"] or spec in damaged], damaged)


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
