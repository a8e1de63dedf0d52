"""Coverage rows: expected grid, merged gaps, open days, listings and the dense view."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from models.coverage import COVERAGE_SCHEMA
from models.enums import Interval
from models.silver import SILVER_SCHEMAS
from tasks.transform import dense_view, gridless_coverage, ohlcv_coverage, open_interest_coverage
from tasks.transform.coverage import expected_grid
from tasks.transform.validate import empty_quarantine

from .builders import DAY, FETCHED, at, silver_candles

LEAP_DAY = date(2024, 2, 29)


def minutes(day: date, present: list[int], symbol: str = "BTCUSDT") -> pl.DataFrame:
    return silver_candles(
        [
            {
                "symbol": symbol,
                "ts": at(day, m),
                "open": 1.0,
                "high": 1.0,
                "low": 1.0,
                "close": 1.0,
                "volume": 0.0,
            }
            for m in present
        ]
    )


def coverage(df: pl.DataFrame, day: date = DAY, **kwargs: object) -> pl.DataFrame:
    args: dict = {
        "symbols": ["BTCUSDT"],
        "quarantined": empty_quarantine("ohlcv"),
        "closed": True,
        "complete": True,
        "now": FETCHED,
        **kwargs,
    }
    return ohlcv_coverage(df, exchange="binance", interval=Interval.M1, day=day, **args)


def gaps(row: dict) -> list[tuple[int, int]]:
    start = at(row["day"], 0)
    return [
        ((g["start"] - start) // timedelta(minutes=1), (g["end"] - start) // timedelta(minutes=1))
        for g in row["gaps"]
    ]


def test_missing_minutes_merge_into_half_open_ranges() -> None:
    present = [m for m in range(1440) if m not in {0, 1, 2, 100, 500, 501, 1439}]
    out = coverage(minutes(DAY, present))
    assert out.schema == COVERAGE_SCHEMA
    row = out.row(0, named=True)
    assert (row["rows_present"], row["rows_expected"]) == (1433, 1440)
    assert gaps(row) == [(0, 3), (100, 101), (500, 502), (1439, 1440)]
    assert (row["layer"], row["dataset"], row["interval"], row["closed"]) == (
        "silver",
        "ohlcv",
        "1m",
        True,
    )


def test_leap_day_grid_has_1440_minutes() -> None:
    grid = expected_grid(["BTCUSDT"], Interval.M1, LEAP_DAY, closed=True)
    assert len(grid) == 1440
    assert grid.get_column("ts").dt.date().unique().to_list() == [LEAP_DAY]
    row = coverage(minutes(LEAP_DAY, list(range(1440))), day=LEAP_DAY).row(0, named=True)
    assert (row["rows_present"], row["rows_expected"], row["gaps"]) == (1440, 1440, [])


def test_every_symbol_gets_a_row_even_without_data() -> None:
    out = coverage(minutes(DAY, [0, 1]), symbols=["BTCUSDT", "ETHUSDT"])
    assert out.get_column("symbol").to_list() == ["BTCUSDT", "ETHUSDT"]
    eth = out.row(1, named=True)
    assert (eth["rows_present"], eth["rows_expected"], gaps(eth)) == (0, 1440, [(0, 1440)])


def test_an_open_day_expects_only_candles_closed_by_now() -> None:
    now = at(DAY, 90) + timedelta(seconds=30)
    out = coverage(minutes(DAY, list(range(80))), closed=False, complete=False, now=now)
    row = out.row(0, named=True)
    assert row["rows_expected"] == 90
    assert gaps(row) == [(80, 90)]
    assert (row["closed"], row["complete"], row["updated_at"]) == (False, False, now)


def test_nothing_is_expected_before_a_known_listing() -> None:
    listed = {"BTCUSDT": at(DAY, 600) + timedelta(seconds=10)}
    out = coverage(minutes(DAY, list(range(601, 1440))), listed_since=listed)
    row = out.row(0, named=True)
    assert row["rows_expected"] == 840
    assert gaps(row) == [(600, 601)]


def test_quarantined_rows_are_counted_per_symbol() -> None:
    bad = pl.concat(
        [empty_quarantine("ohlcv"), pl.DataFrame({"symbol": ["BTCUSDT"] * 2})], how="diagonal"
    )
    assert coverage(minutes(DAY, [0]), quarantined=bad).row(0, named=True)["quarantined"] == 2


def test_open_interest_counts_the_hourly_grid_only() -> None:
    rows = pl.DataFrame(
        {
            "exchange": "okx",
            "symbol": "BTCUSDT",
            "ts": [at(DAY, 60 * h) for h in range(23)] + [at(DAY, 61) + timedelta(milliseconds=5)],
            "open_interest": 1.0,
            "open_interest_value": None,
        },
        schema=SILVER_SCHEMAS["open_interest"],
    )
    out = open_interest_coverage(
        rows,
        exchange="okx",
        day=DAY,
        symbols=["BTCUSDT"],
        quarantined=empty_quarantine("open_interest"),
        closed=True,
        complete=True,
        now=FETCHED,
    )
    row = out.row(0, named=True)
    assert (row["interval"], row["rows_present"], row["rows_expected"]) == ("1h", 23, 24)
    assert [(g["start"], g["end"]) for g in row["gaps"]] == [(at(DAY, 1380), at(DAY, 1440))]


def test_funding_coverage_claims_no_grid() -> None:
    rows = pl.DataFrame(
        {
            "exchange": "binance",
            "symbol": "BTCUSDT",
            "ts": [at(DAY, 0), at(DAY, 480)],
            "funding_rate": 0.0001,
            "mark_price": None,
            "interval_hours": 8.0,
            "apr": 0.1,
        },
        schema=SILVER_SCHEMAS["funding"],
    )
    out = gridless_coverage(
        "funding",
        rows,
        exchange="binance",
        day=DAY,
        symbols=["BTCUSDT"],
        quarantined=empty_quarantine("funding"),
        closed=True,
        complete=True,
    )
    row = out.row(0, named=True)
    assert (row["rows_present"], row["rows_expected"], row["gaps"], row["interval"]) == (
        2,
        None,
        [],
        None,
    )


def test_dense_view_fills_the_grid_with_flagged_empty_candles() -> None:
    sparse = minutes(DAY, [m for m in range(1440) if m != 7])
    dense = dense_view(sparse, Interval.M1, DAY)
    assert len(dense) == 1440
    filled = dense.filter(pl.col("is_filled"))
    assert filled.get_column("ts").to_list() == [at(DAY, 7)]
    row = filled.row(0, named=True)
    assert (row["open"], row["close"], row["volume"]) == (None, None, 0.0)
    assert dense.filter(~pl.col("is_filled")).drop("is_filled").equals(sparse)


def reference_gaps(present: set[int], expected: list[int]) -> list[tuple[int, int]]:
    """Missing expected minutes merged into [start, end) runs, the slow obvious way."""
    runs: list[tuple[int, int]] = []
    for minute in expected:
        if minute in present:
            continue
        if runs and runs[-1][1] == minute:
            runs[-1] = (runs[-1][0], minute + 1)
        else:
            runs.append((minute, minute + 1))
    return runs


@given(
    st.sets(st.integers(-5, 1445), max_size=60),
    st.none() | st.integers(-100, 1500),
    st.none() | st.integers(0, 1500 * 60),
)
def test_gaps_and_counts_match_the_expected_grid(
    present: set[int], listed_minute: int | None, now_seconds: int | None
) -> None:
    """Gaps come from the present points alone; they must equal the expected grid's misses."""
    day_start = at(DAY, 0)
    listed = {"BTCUSDT": at(DAY, listed_minute) + timedelta(seconds=7)} if listed_minute else {}
    now = day_start + timedelta(seconds=now_seconds) if now_seconds is not None else FETCHED
    grid = expected_grid(
        ["BTCUSDT"], Interval.M1, DAY, closed=now_seconds is None, now=now, listed_since=listed
    )
    expected = [(ts - day_start) // timedelta(minutes=1) for ts in grid.get_column("ts")]
    row = coverage(
        minutes(DAY, sorted(present)),
        closed=now_seconds is None,
        now=now,
        listed_since=listed,
    ).row(0, named=True)
    assert row["rows_expected"] == len(expected)
    assert row["rows_present"] == len({m for m in present if 0 <= m < 1440})
    assert gaps(row) == reference_gaps(present, expected)


def test_coverage_does_not_depend_on_row_order_or_null_times() -> None:
    """Rows in any order, a symbol's rows apart, a null `ts`: the records of the sorted rows."""
    present = [m for m in range(1440) if m % 7]
    rows = pl.concat([minutes(DAY, present, "BTCUSDT"), minutes(DAY, [0, 5, 5, 1439], "ETHUSDT")])
    sorted_out = coverage(rows, symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT"])
    shuffled = rows.sample(fraction=1.0, shuffle=True, seed=3)
    with_null = pl.concat([shuffled, shuffled.head(1).with_columns(pl.lit(None).alias("ts"))])
    for frame in (shuffled, with_null):
        out = coverage(frame, symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT"])
        assert out.drop("updated_at").equals(sorted_out.drop("updated_at"))
    eth = sorted_out.row(1, named=True)
    assert (eth["symbol"], eth["rows_present"]) == ("ETHUSDT", 3)
    assert gaps(eth) == [(1, 5), (6, 1439)]
    assert sorted_out.row(2, named=True)["rows_present"] == 0
