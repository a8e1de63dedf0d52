"""Coverage rows (COVERAGE_SCHEMA) per symbol: present vs expected grid points and merged gaps.

Silver never invents rows: gaps are reported here, and `dense_view` fills them only for
users who ask, with an explicit `is_filled` flag.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime, timedelta
from typing import NamedTuple

import polars as pl

from models.coverage import COVERAGE_SCHEMA, GAP_STRUCT
from models.dates import day_bounds_ms, day_start
from models.enums import OPEN_INTEREST_PERIOD, Interval, Layer
from models.silver import SILVER_SCHEMAS
from tasks.transform.common import UTC_MS, collect, conform, stamp, utc_ms_lit

_NO_GAPS = pl.lit([], dtype=pl.List(GAP_STRUCT))
_NONE = pl.lit(None)
_SILVER = pl.lit(Layer.SILVER.value)
# What a row of the per-symbol pass is: a data row, a requested symbol, a quarantined row.
_DATA, _REQUESTED, _QUARANTINED = 0, 1, 2
_NO_MS = pl.lit(None, pl.Int64)


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


def _by_symbol(
    df: pl.DataFrame, quarantined: pl.DataFrame, symbols: Sequence[str], *, grid: bool
) -> pl.LazyFrame:
    """The rows of `df`, the quarantined rows and the requested symbols in one frame, told
    apart by `_kind`, to be counted per symbol in one pass; `_ms` is a data row's `ts` in
    epoch ms when there is a grid."""
    ms = pl.col("ts").dt.epoch("ms") if grid else _NO_MS

    def part(rows: pl.LazyFrame, kind: int, ms: pl.Expr = _NO_MS) -> pl.LazyFrame:
        return rows.select("symbol", ms.alias("_ms"), pl.lit(kind, pl.Int32).alias("_kind"))

    requested = pl.LazyFrame({"symbol": symbols}, schema={"symbol": pl.String()})
    parts = [part(df.lazy(), _DATA, ms), part(requested, _REQUESTED)]
    if not quarantined.is_empty():
        parts.append(part(quarantined.lazy(), _QUARANTINED))
    return pl.concat(parts)


def _grid_counts(
    rows: pl.LazyFrame, interval: Interval, day: date, window: _Window
) -> pl.LazyFrame:
    """Per symbol: `rows_present`, the distinct grid points of the day present;
    `quarantined`; `_low`, its first expected point; and `_links`, the points present,
    sorted, those before the window moved onto `_low - step` and those after it onto the
    high (which keeps them out of the gaps)."""
    step = interval.ms
    start, end = day_bounds_ms(day)
    ms = pl.col("_ms")
    on_grid = (ms >= start) & (ms < end) & (ms % step == 0)
    low = pl.lit(window.low, pl.Int64)
    if window.lows:
        low = pl.col("symbol").replace_strict(
            list(window.lows), list(window.lows.values()), default=low, return_dtype=pl.Int64
        )
    link = pl.min_horizontal(pl.max_horizontal(ms, low - step), window.high)
    return rows.group_by("symbol").agg(
        ms.filter(on_grid).n_unique().alias("rows_present"),
        (pl.col("_kind") == _QUARANTINED).sum().alias("quarantined"),
        low.first().alias("_low"),
        link.filter(on_grid).sort().alias("_links"),
    )


def _gaps(step: int, high: int) -> pl.Expr:
    """Merged gaps of a symbol: between consecutive links of its chain `low - step`, the
    clamped points, `high`, wherever they lie more than a step apart (none if low >= high)."""
    link = pl.element()
    after = link.shift(1) + step  # the grid point after the previous link
    gap = pl.struct(after.alias("start"), link.alias("end")).filter(link > after)
    chain = pl.concat_list(pl.col("_low") - step, "_links", pl.lit(high))
    gaps = chain.list.eval(gap).cast(pl.List(GAP_STRUCT))
    return pl.when(pl.col("_low") < high).then(gaps).otherwise(_NO_GAPS)


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
    rows = _by_symbol(df, quarantined, symbols, grid=grid is not None)
    values = {
        "layer": _SILVER,
        "dataset": pl.lit(dataset),
        "exchange": pl.lit(exchange),
        "symbol": pl.col("symbol"),
        "interval": pl.lit(grid.value if grid else None, pl.String),
        "day": pl.lit(day),
        "rows_present": pl.col("rows_present"),
        "rows_expected": _NONE,
        "gaps": _NO_GAPS,
        "quarantined": pl.col("quarantined"),
        "closed": pl.lit(closed),
        "complete": pl.lit(complete),
        "updated_at": utc_ms_lit(stamp(now)),
    }
    if grid is None:
        kind = pl.col("_kind")
        counts = rows.group_by("symbol").agg(
            (kind == _DATA).sum().alias("rows_present"),
            (kind == _QUARANTINED).sum().alias("quarantined"),
        )
    else:
        window = _grid_window(grid, day, closed=closed, now=now, listed_since=listed_since)
        counts = _grid_counts(rows, grid, day, window)
        expected = (window.high - pl.col("_low")) // grid.ms
        values["rows_expected"] = pl.max_horizontal(expected, 0)
        values["gaps"] = _gaps(grid.ms, window.high)
    coverage = counts.filter(pl.col("symbol").is_not_null()).select(
        values.get(name, _NONE).alias(name) for name in COVERAGE_SCHEMA
    )
    return collect(coverage.cast(COVERAGE_SCHEMA).sort("symbol"))


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
    as missing. `failed` symbols are never complete.
    """
    if coverage.is_empty():
        return coverage
    if grid is None:
        tail_missing = pl.lit(False)
    else:
        _, end = day_bounds_ms(day)
        last = (
            good.lazy()
            .group_by("symbol")
            .agg(pl.col("ts").dt.epoch("ms").max().alias("_last"))
            .collect()
        )
        coverage = coverage.join(last, on="symbol", how="left")
        tail_missing = (pl.col("rows_expected") > 0) & (
            pl.col("_last").is_null() | (pl.col("_last") + grid.ms < end)
        )
    is_settled = settled(day, now, settle_days)
    quarantined = pl.col("quarantined") > 0
    unconfirmed = tail_missing | quarantined
    ok = pl.lit(closed) & ~pl.col("symbol").is_in(list(failed))
    complete = ok & (~unconfirmed | pl.lit(is_settled))
    why = pl.concat_str(
        [
            pl.when(tail_missing).then(pl.lit("rows missing at the end of the day")),
            pl.when(quarantined).then(pl.format("{} rows quarantined", pl.col("quarantined"))),
        ],
        separator="; ",
        ignore_nulls=True,
    )
    until = (day + timedelta(days=1 + settle_days)).isoformat()
    has_gaps = pl.col("gaps").list.len() > 0
    reason = (
        pl.when(~pl.lit(closed))
        .then(None)
        .when(unconfirmed & complete)
        .then(pl.format("source gap: {} (still so {} days after the day)", why, settle_days))
        .when(unconfirmed)
        .then(pl.format("incomplete: {}; fetched again until {}", why, pl.lit(until)))
        .when(has_gaps)
        .then(pl.lit("source gap: the exchange served later rows of the day"))
        .otherwise(None)
    )
    return coverage.with_columns(
        complete.alias("complete"), reason.cast(pl.String).alias("gap_reason")
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
