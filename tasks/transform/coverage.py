"""Coverage rows (COVERAGE_SCHEMA) per symbol: present vs expected grid points and merged gaps.

Silver never invents rows: gaps are reported here, and `dense_view` fills them only for
users who ask, with an explicit `is_filled` flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import polars as pl

from models.coverage import COVERAGE_SCHEMA, GAP_STRUCT
from models.dates import day_bounds_ms
from models.enums import OPEN_INTEREST_PERIOD, Interval, Layer
from models.silver import SILVER_SCHEMAS
from tasks.transform.common import UTC_MS, conform, stamp

_NO_GAPS = pl.lit([], dtype=pl.List(GAP_STRUCT))


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


def _present(df: pl.DataFrame, interval: Interval, day: date) -> pl.DataFrame:
    """Distinct (symbol, ts) of rows on the interval grid inside `day`."""
    start, end = day_bounds_ms(day)
    ms = pl.col("ts").dt.epoch("ms")
    on_grid = (ms >= start) & (ms < end) & (ms % interval.ms == 0)
    return df.select("symbol", "ts").filter(on_grid).unique()


def merge_gaps(missing: pl.DataFrame, interval: Interval) -> pl.DataFrame:
    """Missing (symbol, ts) points → one row per symbol with merged [start, end) `gaps`."""
    step = interval.ms
    ms = pl.col("ts").dt.epoch("ms")
    new_run = ((ms - ms.shift(1)).over("symbol") != step).fill_null(True)
    runs = (
        missing.sort("symbol", "ts")
        .with_columns(new_run.cum_sum().alias("_run"))
        .group_by("symbol", "_run")
        .agg(pl.col("ts").min().alias("start"), (pl.col("ts").max() + interval.delta).alias("end"))
        .sort("symbol", "start")
    )
    return runs.group_by("symbol", maintain_order=True).agg(
        pl.struct("start", "end").cast(GAP_STRUCT).alias("gaps")
    )


def _symbol_frame(symbols: Sequence[str], *frames: pl.DataFrame) -> pl.DataFrame:
    seen = set(symbols)
    for frame in frames:
        seen.update(s for s in frame.get_column("symbol").unique().to_list() if s is not None)
    return pl.DataFrame({"symbol": sorted(seen)}, schema={"symbol": pl.String()})


def _count(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    return frame.group_by("symbol").agg(pl.len().cast(pl.Int64).alias(name))


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
    all_symbols = _symbol_frame(symbols, df, quarantined)
    base = all_symbols.join(_count(quarantined, "quarantined"), on="symbol", how="left")
    if grid is None:
        counts = _count(df, "rows_present")
        rows = base.join(counts, on="symbol", how="left").with_columns(
            pl.lit(None, pl.Int64).alias("rows_expected"), _NO_GAPS.alias("gaps")
        )
    else:
        expected = expected_grid(
            all_symbols.get_column("symbol").to_list(),
            grid,
            day,
            closed=closed,
            now=now,
            listed_since=listed_since,
        )
        present = _present(df, grid, day)
        missing = expected.join(present, on=["symbol", "ts"], how="anti")
        rows = (
            base.join(_count(present, "rows_present"), on="symbol", how="left")
            .join(_count(expected, "rows_expected"), on="symbol", how="left")
            .join(merge_gaps(missing, grid), on="symbol", how="left")
            .with_columns(pl.col("rows_expected").fill_null(0), pl.col("gaps").fill_null(_NO_GAPS))
        )
    filled = rows.with_columns(
        pl.lit(Layer.SILVER.value).alias("layer"),
        pl.lit(dataset).alias("dataset"),
        pl.lit(exchange).alias("exchange"),
        pl.lit(grid.value if grid else None, pl.String).alias("interval"),
        pl.lit(day).alias("day"),
        pl.col("rows_present").fill_null(0),
        pl.col("quarantined").fill_null(0),
        pl.lit(closed).alias("closed"),
        pl.lit(complete).alias("complete"),
        pl.lit(stamp(now)).cast(UTC_MS).alias("updated_at"),
    )
    return conform(filled, COVERAGE_SCHEMA).sort("symbol")


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
