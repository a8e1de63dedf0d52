"""Coverage rows (COVERAGE_SCHEMA) per symbol: present vs expected grid points and merged gaps.

Silver never invents rows: gaps are reported here, and `dense_view` fills them only for
users who ask, with an explicit `is_filled` flag.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

import numpy as np
import polars as pl

from models.coverage import COVERAGE_SCHEMA
from models.dates import day_bounds_ms, day_start
from models.enums import OPEN_INTEREST_PERIOD, Interval, Layer
from models.silver import SILVER_SCHEMAS
from tasks.transform.common import UTC_MS, conform, stamp

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def expected_grid(
    symbols: Sequence[str],
    interval: Interval,
    day: date,
    *,
    closed: bool,
    now: datetime | None = None,
    listed_since: dict[str, datetime] | None = None,
) -> pl.DataFrame:
    """(symbol, ts) of every candle expected on `day`.

    An open day expects only the candles that had closed by `now`; a symbol listed at a known
    time expects nothing before the candle in which it started trading.
    """
    start, end = day_bounds_ms(day)
    if not closed:
        now_ms = int(stamp(now).timestamp() * 1000)
        end = min(end, now_ms // interval.ms * interval.ms)
    listed = listed_since or {}
    listings = pl.DataFrame(
        {
            "symbol": list(symbols),
            "_listed": [
                int(listed[s].timestamp() * 1000) if s in listed else None for s in symbols
            ],
        },
        schema={"symbol": pl.String(), "_listed": pl.Int64()},
    )
    grid = pl.DataFrame({"_ms": pl.int_range(start, max(start, end), interval.ms, eager=True)})
    return (
        listings.join(grid, how="cross")
        .filter(pl.col("_listed").is_null() | (pl.col("_ms") + interval.ms > pl.col("_listed")))
        .select("symbol", pl.col("_ms").cast(UTC_MS).alias("ts"))
    )


class _Window(NamedTuple):
    """The grid points `expected_grid` lists, as [low, high) in epoch ms."""

    lows: dict[str, int]  # per listed symbol: the first candle ending after its listing
    low: int  # for the other symbols
    high: int


def _grid_window(
    interval: Interval,
    day: date,
    *,
    closed: bool,
    now: datetime | None,
    listed_since: dict[str, datetime] | None,
) -> _Window:
    step = interval.ms
    start, end = day_bounds_ms(day)
    if not closed:
        now_ms = int(stamp(now).timestamp() * 1000)
        end = min(end, now_ms // step * step)
    lows = {}
    for symbol, listed in (listed_since or {}).items():
        listed_ms = int(listed.timestamp() * 1000)
        lows[symbol] = start + max(0, (listed_ms - step - start) // step + 1) * step
    return _Window(lows, start, max(start, end))


class SymbolCounts(NamedTuple):
    """One symbol's record of a partition before judgement (`count_symbols`)."""

    symbol: str
    rows_present: int
    rows_expected: int | None  # None without a grid
    gaps: list[tuple[int, int]]  # merged missing ranges, [start, end) in epoch ms
    quarantined: int
    last: int | None  # the latest data row's `ts` in epoch ms (None: no row, or no grid)


def _symbol_runs(df: pl.DataFrame) -> tuple[pl.DataFrame, list[tuple[str | None, int, int]]]:
    """`df` with each symbol's rows together (as given when they are: `dedup_latest` leaves
    them sorted by key) and, per symbol, (symbol, first row, rows)."""
    runs = df.get_column("symbol").rle().to_list()
    if len({run["value"] for run in runs}) < len(runs):  # a symbol in several runs
        df = df.sort("symbol", nulls_last=True, maintain_order=True)
        runs = df.get_column("symbol").rle().to_list()
    out = []
    offset = 0
    for run in runs:
        out.append((run["value"], offset, run["len"]))
        offset += run["len"]
    return df, out


_NULL_MS = np.iinfo(np.int64).min  # a null `ts`: off every grid, never the latest


def _epoch_ms(ts: pl.Series) -> np.ndarray:
    """`ts` in epoch ms as an int64 array, a null as `_NULL_MS`."""
    dtype = ts.dtype
    if isinstance(dtype, pl.Datetime) and dtype.time_unit == "ms":
        ms = ts.to_physical()  # no conversion: the values are epoch ms already
    else:
        ms = ts.dt.epoch("ms")
    if ms.null_count():
        ms = ms.fill_null(_NULL_MS)
    return ms.to_numpy()


def _merged_gaps(points: np.ndarray, low: int, high: int, step: int) -> list[tuple[int, int]]:
    """The merged missing ranges of the sorted grid `points` present in [low, high): between
    consecutive links of the chain `low - step`, the points clamped to [low - step, high],
    `high`, wherever they lie more than a step apart (points outside the window thus make no
    gap)."""
    if low >= high:
        return []
    chain = np.concatenate(([low - step], np.clip(points, low - step, high), [high]))
    after = chain[:-1] + step  # the grid point after each link
    missing = chain[1:] > after
    if not missing.any():
        return []
    return list(zip(after[missing].tolist(), chain[1:][missing].tolist(), strict=True))


def count_symbols(
    df: pl.DataFrame,
    *,
    grid: Interval | None,
    day: date,
    symbols: Sequence[str],
    quarantined: pl.DataFrame,
    closed: bool,
    now: datetime | None = None,
    listed_since: dict[str, datetime] | None = None,
) -> list[SymbolCounts]:
    """Per symbol (of `df`'s rows, of `quarantined` and of `symbols`), in symbol order: with
    a `grid`, the distinct grid points of the day present, the points expected (an open day
    expects the candles closed by `now`, a symbol listed at a known time none before the
    candle it started trading in), the merged gaps, the latest row; without one, the rows.

    One pass over each symbol's timestamps at array speed: a partition holds a few symbols
    of a few thousand rows, where a query's fixed cost outweighs its work."""
    df, runs = _symbol_runs(df)
    per_symbol = {symbol: (offset, rows) for symbol, offset, rows in runs if symbol is not None}
    bad: dict[str, int] = {}
    if not quarantined.is_empty():
        for symbol in quarantined.get_column("symbol").to_list():
            if symbol is not None:
                bad[symbol] = bad.get(symbol, 0) + 1
    names = sorted({*per_symbol, *bad, *symbols})
    if grid is None:
        return [
            SymbolCounts(s, per_symbol.get(s, (0, 0))[1], None, [], bad.get(s, 0), None)
            for s in names
        ]
    step = grid.ms
    start, end = day_bounds_ms(day)
    window = _grid_window(grid, day, closed=closed, now=now, listed_since=listed_since)
    ms = _epoch_ms(df.get_column("ts")) if per_symbol else np.empty(0, np.int64)
    out = []
    for symbol in names:
        offset, rows = per_symbol.get(symbol, (0, 0))
        values = ms[offset : offset + rows]
        points = values[(values >= start) & (values < end) & (values % step == 0)]
        if points.size > 1 and not bool((points[1:] >= points[:-1]).all()):
            points = np.sort(points)
        present = int(np.count_nonzero(points[1:] != points[:-1])) + 1 if points.size else 0
        real = values[values != _NULL_MS] if rows else values
        last = int(real.max()) if real.size else None
        low = window.lows.get(symbol, window.low)
        out.append(
            SymbolCounts(
                symbol,
                present,
                max((window.high - low) // step, 0),
                _merged_gaps(points, low, window.high, step),
                bad.get(symbol, 0),
                last,
            )
        )
    return out


_INT_GAPS = pl.List(pl.Struct({"start": pl.Int64(), "end": pl.Int64()}))


def _constant(name: str, value: object, dtype: pl.DataType, height: int) -> pl.Series:
    """`value` repeated `height` times."""
    return (
        _one(name, value, dtype).new_from_index(0, height)
        if height
        else _one(name, None, dtype).clear()
    )


@functools.lru_cache(maxsize=256)
def _one(name: str, value: object, dtype: pl.DataType) -> pl.Series:
    """A one-row Series of `value`, built once (a partition's constants repeat: layer,
    exchange, day...); only ever repeated by `new_from_index`, never modified."""
    return pl.Series(name, [value], dtype=dtype)


def coverage_frame(
    counts: Sequence[SymbolCounts],
    *,
    layer: str,
    dataset: str,
    exchange: str,
    interval: str | None,
    day: date,
    closed: bool,
    complete: Sequence[bool],
    updated_at: datetime,
    gap_reason: Sequence[str | None] | None = None,
    unavailable: Sequence[str | None] | None = None,
) -> pl.DataFrame:
    """Coverage records (`COVERAGE_SCHEMA`, one per entry of `counts`, in that order), built
    from the values at once: no query."""
    n = len(counts)
    gaps = [[{"start": s, "end": e} for s, e in c.gaps] for c in counts]
    aware = updated_at if updated_at.tzinfo else updated_at.replace(tzinfo=UTC)
    micros = (aware - _EPOCH) // _MICROSECOND  # as `utc_ms_lit`: ms, the rest truncated
    none: list[str | None] = [None] * n
    columns = [
        _constant("layer", layer, pl.String(), n),
        _constant("dataset", dataset, pl.String(), n),
        _constant("exchange", exchange, pl.String(), n),
        pl.Series("symbol", [c.symbol for c in counts], dtype=pl.String()),
        _constant("interval", interval, pl.String(), n),
        _constant("day", day, pl.Date(), n),
        pl.Series("rows_present", [c.rows_present for c in counts], dtype=pl.Int64()),
        pl.Series("rows_expected", [c.rows_expected for c in counts], dtype=pl.Int64()),
        pl.Series("gaps", gaps, dtype=_INT_GAPS).cast(COVERAGE_SCHEMA["gaps"])
        if any(gaps)
        else pl.Series("gaps", gaps, dtype=COVERAGE_SCHEMA["gaps"]),
        pl.Series("quarantined", [c.quarantined for c in counts], dtype=pl.Int64()),
        _constant("closed", closed, pl.Boolean(), n),
        pl.Series("complete", list(complete), dtype=pl.Boolean()),
        _constant("updated_at", micros // 1000, pl.Int64(), n).cast(UTC_MS),
        pl.Series("file_stamp", none, dtype=pl.String()),
        pl.Series("gap_reason", list(gap_reason or none), dtype=pl.String()),
        pl.Series("unavailable", list(unavailable or none), dtype=pl.String()),
    ]
    return pl.DataFrame(columns)


def build_coverage(
    dataset: str,
    df: pl.DataFrame,
    *,
    exchange: str,
    grid: Interval | None,
    day: date,
    symbols: Sequence[str],
    quarantined: pl.DataFrame,
    closed: bool,
    complete: bool,
    now: datetime | None = None,
    listed_since: dict[str, datetime] | None = None,
) -> pl.DataFrame:
    """Silver coverage of one partition, one row per symbol even when it has no rows.

    With a `grid`, `rows_present` counts distinct grid points present and `gaps` merge the
    expected points that are missing; without one, `rows_present` counts rows and
    `rows_expected` is null with no gaps.
    """
    counts = count_symbols(
        df,
        grid=grid,
        day=day,
        symbols=symbols,
        quarantined=quarantined,
        closed=closed,
        now=now,
        listed_since=listed_since,
    )
    return coverage_frame(
        counts,
        layer=Layer.SILVER.value,
        dataset=dataset,
        exchange=exchange,
        interval=grid.value if grid else None,
        day=day,
        closed=closed,
        complete=[complete] * len(counts),
        updated_at=stamp(now),
    )


def ohlcv_coverage(
    df: pl.DataFrame,
    *,
    exchange: str,
    interval: Interval,
    day: date,
    symbols: Sequence[str],
    quarantined: pl.DataFrame,
    closed: bool,
    complete: bool,
    now: datetime | None = None,
    listed_since: dict[str, datetime] | None = None,
) -> pl.DataFrame:
    """Coverage of one exchange/interval/day of silver candles against the candle grid."""
    return build_coverage(
        "ohlcv",
        df,
        exchange=exchange,
        grid=interval,
        day=day,
        symbols=symbols,
        quarantined=quarantined,
        closed=closed,
        complete=complete,
        now=now,
        listed_since=listed_since,
    )


def open_interest_coverage(
    df: pl.DataFrame,
    *,
    exchange: str,
    day: date,
    symbols: Sequence[str],
    quarantined: pl.DataFrame,
    closed: bool,
    complete: bool,
    now: datetime | None = None,
    listed_since: dict[str, datetime] | None = None,
) -> pl.DataFrame:
    """Coverage against the hourly open-interest grid; off-grid snapshots are not counted."""
    return build_coverage(
        "open_interest",
        df,
        exchange=exchange,
        grid=OPEN_INTEREST_PERIOD,
        day=day,
        symbols=symbols,
        quarantined=quarantined,
        closed=closed,
        complete=complete,
        now=now,
        listed_since=listed_since,
    )


def gridless_coverage(
    dataset: str,
    df: pl.DataFrame,
    *,
    exchange: str,
    day: date,
    symbols: Sequence[str],
    quarantined: pl.DataFrame,
    closed: bool,
    complete: bool,
    now: datetime | None = None,
) -> pl.DataFrame:
    """Coverage for funding and instruments: rows counted, `rows_expected` null, no gaps.

    Funding has no fixed grid: intervals vary per symbol and over time, so a missing event is
    indistinguishable from an interval change and no expectation is claimed.
    """
    return build_coverage(
        dataset,
        df,
        exchange=exchange,
        grid=None,
        day=day,
        symbols=symbols,
        quarantined=quarantined,
        closed=closed,
        complete=complete,
        now=now,
    )


def settled(day: date, now: datetime, settle_days: int) -> bool:
    """Whether `day` ended at least `settle_days` days before `now`: what it still lacks is
    then a gap of the source, no longer fetched again."""
    return day_start(day) + timedelta(days=1 + settle_days) <= stamp(now)


class Judge:
    """`complete` and `gap_reason` of a partition's records, symbol by symbol (the rules of
    `judge_complete`)."""

    def __init__(
        self,
        *,
        grid: Interval | None,
        day: date,
        closed: bool,
        now: datetime,
        settle_days: int,
    ) -> None:
        self.grid = grid
        self.end = day_bounds_ms(day)[1]
        self.closed = closed
        self.settled = settled(day, now, settle_days)
        self.settle_days = settle_days
        self.until = (day + timedelta(days=1 + settle_days)).isoformat()

    def __call__(
        self,
        *,
        rows_expected: int | None,
        quarantined: int,
        has_gaps: bool,
        last: int | None,
        failed: bool = False,
    ) -> tuple[bool, str | None]:
        tail_missing = (
            self.grid is not None
            and (rows_expected or 0) > 0
            and (last is None or last + self.grid.ms < self.end)
        )
        unconfirmed = tail_missing or quarantined > 0
        complete = self.closed and not failed and (not unconfirmed or self.settled)
        if not self.closed:
            return complete, None
        if unconfirmed:
            why = "; ".join(
                part
                for part, applies in (
                    ("rows missing at the end of the day", tail_missing),
                    (f"{quarantined} rows quarantined", quarantined > 0),
                )
                if applies
            )
            if complete:
                return complete, (
                    f"source gap: {why} (still so {self.settle_days} days after the day)"
                )
            return complete, f"incomplete: {why}; fetched again until {self.until}"
        if has_gaps:
            return complete, "source gap: the exchange served later rows of the day"
        return complete, None

    def counts(self, counts: SymbolCounts, failed: bool = False) -> tuple[bool, str | None]:
        """The judgement of one symbol's `count_symbols` record."""
        return self(
            rows_expected=counts.rows_expected,
            quarantined=counts.quarantined,
            has_gaps=bool(counts.gaps),
            last=counts.last,
            failed=failed,
        )


def judge_complete(
    coverage: pl.DataFrame,
    good: pl.DataFrame,
    *,
    grid: Interval | None,
    day: date,
    closed: bool,
    now: datetime,
    settle_days: int,
    failed: Collection[str] = (),
) -> pl.DataFrame:
    """`coverage` (from `build_coverage`) with `complete` and `gap_reason` decided per symbol.

    A closed day is complete for a symbol when every expected row is there, or what is missing
    is a gap the source confirms: it served later rows of the day (a maintenance window, a
    quiet minute). Rows quarantined for a source error, and a missing tail (candles not yet
    published), are not confirmed: the day stays incomplete, so planning fetches it again,
    until it is `settled` (older than `settle_days`), when what is still missing is recorded
    as a gap of the source. Funding has no grid (intervals vary): only quarantined rows count
    as missing. `failed` symbols are never complete. (`Judge` decides each symbol.)
    """
    if coverage.is_empty():
        return coverage
    last: dict[str | None, int | None] = {}
    if grid is not None:
        good, runs = _symbol_runs(good)
        ms = _epoch_ms(good.get_column("ts")) if runs else np.empty(0, np.int64)
        for symbol, offset, rows in runs:
            values = ms[offset : offset + rows]
            values = values[values != _NULL_MS]
            last[symbol] = int(values.max()) if values.size else None
    judge = Judge(grid=grid, day=day, closed=closed, now=now, settle_days=settle_days)
    failed = set(failed)
    decided = [
        judge(
            rows_expected=expected,
            quarantined=bad or 0,
            has_gaps=bool(gaps),
            last=last.get(symbol),
            failed=symbol in failed,
        )
        for symbol, expected, bad, gaps in coverage.select(
            "symbol", "rows_expected", "quarantined", pl.col("gaps").list.len()
        ).iter_rows()
    ]
    return coverage.with_columns(
        pl.Series("complete", [c for c, _ in decided], dtype=pl.Boolean()),
        pl.Series("gap_reason", [r for _, r in decided], dtype=pl.String()),
    ).select(COVERAGE_SCHEMA.names())


def dense_view(df: pl.DataFrame, interval: Interval, day: date) -> pl.DataFrame:
    """Silver candles with every missing grid point of `day` added, for users who want a grid.

    Added rows carry null OHLC, `volume` 0, null `quote_volume`/`trades` and `is_filled`
    true; one grid per (exchange, symbol) found in `df`. Not stored by default.
    """
    schema = pl.Schema({**SILVER_SCHEMAS["ohlcv"], "is_filled": pl.Boolean()})
    series = df.select("exchange", "symbol").unique()
    if series.is_empty():
        return pl.DataFrame(schema=schema)
    grid = expected_grid(series.get_column("symbol").unique().to_list(), interval, day, closed=True)
    frame = series.join(grid, on="symbol").with_columns(pl.lit(interval.value).alias("interval"))
    dense = frame.join(
        df.with_columns(pl.lit(False).alias("is_filled")),
        on=["exchange", "symbol", "interval", "ts"],
        how="left",
    ).with_columns(pl.col("is_filled").fill_null(True), pl.col("volume").fill_null(0.0))
    return conform(dense, schema).sort("exchange", "symbol", "ts")
