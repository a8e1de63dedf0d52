"""Validation rules, reasons, and the invariants good + quarantined = input."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from models.enums import Interval
from models.silver import SILVER_KEYS, SILVER_SCHEMAS
from tasks.transform import dedup_latest, quarantine_schema, validate

from .builders import DAY, FETCHED, at, silver_candles


def candle(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "ts": at(DAY, 0),
        "open": 10.0,
        "high": 12.0,
        "low": 9.0,
        "close": 11.0,
        "volume": 5.0,
        "quote_volume": 50.0,
        "trades": 3,
    }
    return {**base, **overrides}


def reasons(records: list[dict[str, object]], day: date = DAY, interval=Interval.M1) -> list[str]:
    good, bad = validate(silver_candles(records), "ohlcv", interval=interval, day=day)
    assert len(good) + len(bad) == len(records)
    return bad.get_column("reason").to_list()


def test_a_clean_candle_passes_in_the_exact_silver_schema() -> None:
    good, bad = validate(silver_candles([candle()]), "ohlcv", interval=Interval.M1, day=DAY)
    assert good.schema == SILVER_SCHEMAS["ohlcv"]
    assert bad.schema == quarantine_schema("ohlcv")
    assert (len(good), len(bad)) == (1, 0)


def test_every_failed_rule_is_named_in_the_reason() -> None:
    [reason] = reasons([candle(high=8.0, volume=-1.0)])
    assert reason == "high<max(open,close); high<low; volume<0"


def test_ohlc_bound_rules() -> None:
    assert reasons([candle(low=10.5)]) == ["low>min(open,close)"]
    assert reasons([candle(high=10.9)]) == ["high<max(open,close)"]
    assert reasons([candle(open=0.0, low=0.0)]) == ["low<=0"]


def test_non_finite_and_missing_values_are_quarantined() -> None:
    assert reasons([candle(close=float("nan"))])[0].startswith("close not finite")
    assert reasons([candle(volume=float("inf"))])[0] == "volume not finite"
    assert reasons([candle(open=None)]) == ["open is null"]
    assert reasons([candle(quote_volume=None, trades=None)]) == []


def test_negative_counts_are_quarantined() -> None:
    assert reasons([candle(quote_volume=-1.0, trades=-2)]) == ["quote_volume<0; trades<0"]


def test_misaligned_timestamp_and_wrong_interval() -> None:
    assert reasons([candle(ts=at(DAY, 0) + timedelta(seconds=30))]) == ["ts not aligned to 1m"]
    assert reasons([candle(ts=at(DAY, 5))], interval=Interval.M15) == [
        "interval is not 15m; ts not aligned to 15m"
    ]


def test_rows_of_the_neighbouring_day_are_quarantined_naming_it() -> None:
    rows = [candle(ts=at(DAY, -1)), candle(ts=at(DAY, 0)), candle(ts=at(DAY, 1440))]
    assert reasons(rows) == [
        "ts on 2024-03-04, outside partition day 2024-03-05",
        "ts on 2024-03-06, outside partition day 2024-03-05",
    ]


def test_conflicting_rows_of_one_fetch_are_all_quarantined_as_duplicates() -> None:
    assert reasons([candle(close=11.0), candle(close=11.5)]) == ["conflicting duplicate key"] * 2


def test_quarantined_rows_keep_fetched_at() -> None:
    frame = silver_candles([candle(volume=-1.0)]).with_columns(
        pl.lit(FETCHED).cast(pl.Datetime("ms", "UTC")).alias("fetched_at")
    )
    _, bad = validate(frame, "ohlcv", interval=Interval.M1, day=DAY)
    assert bad.get_column("fetched_at").to_list() == [FETCHED]


def test_funding_rules() -> None:
    schema = SILVER_SCHEMAS["funding"]
    rows = [
        ("binance", "BTCUSDT", at(DAY, 0), 0.0001, 60000.0, 8.0, 0.1095),
        ("binance", "BTCUSDT", at(DAY, 480), 0.06, None, 8.0, 65.7),
        ("binance", "BTCUSDT", at(DAY, 960), float("nan"), -1.0, 0.0, 0.0),
        ("binance", "ETHUSDT", at(DAY, 0), 0.0001, None, None, None),
    ]
    good, bad = validate(
        pl.DataFrame(rows, schema=schema, orient="row"), "funding", interval=None, day=DAY
    )
    assert len(good) == 1
    assert bad.get_column("reason").to_list() == [
        "|funding_rate|>=0.05",
        "funding_rate not finite; |funding_rate|>=0.05; mark_price<=0; interval_hours<=0",
        "interval_hours is null; apr is null",
    ]


def test_open_interest_rules() -> None:
    schema = SILVER_SCHEMAS["open_interest"]
    rows = [
        ("okx", "BTCUSDT", at(DAY, 60), 10.0, 1e6),
        ("okx", "BTCUSDT", at(DAY, 61), -1.0, None),
        ("okx", "BTCUSDT", at(DAY, 62), float("inf"), -5.0),
    ]
    good, bad = validate(
        pl.DataFrame(rows, schema=schema, orient="row"), "open_interest", interval=None, day=DAY
    )
    assert len(good) == 1
    assert bad.get_column("reason").to_list() == [
        "open_interest<0",
        "open_interest not finite; open_interest_value<0",
    ]


def test_instrument_rules() -> None:
    schema = SILVER_SCHEMAS["instruments"]
    rows = [
        ("okx", "BTCUSDT", "BTC-USDT", "BTC", "USDT", "spot", "live"),
        ("okx", "BTCUSDT", "BTC-USDT-SWAP", "BTC", "USDT", "perp", "live"),
        ("okx", "ETHUSDT", "ETH-USDT-250328", "ETH", "USDT", "future", " "),
        ("okx", "SOLUSDT", "SOL-USDC", "SOL", "USDC", "spot", "live"),
    ]
    good, bad = validate(
        pl.DataFrame(rows, schema=schema, orient="row"), "instruments", interval=None, day=DAY
    )
    assert len(good) == 2
    assert bad.get_column("reason").to_list() == [
        "status is empty; kind not in spot|perp",
        "symbol is not base+quote",
    ]


prices = st.floats(-5, 200) | st.sampled_from([float("nan"), float("inf"), -float("inf")])


@st.composite
def plausible_candle(draw: st.DrawFn) -> dict[str, object]:
    o, c = draw(st.floats(1, 100)), draw(st.floats(1, 100))
    below, above = draw(st.floats(-0.5, 5)), draw(st.floats(-0.5, 5))
    return candle(
        ts=at(DAY, draw(st.integers(-2, 1441))),
        open=o,
        close=c,
        low=min(o, c) - below,
        high=max(o, c) + above,
        volume=draw(st.floats(-0.1, 10)),
    )


arbitrary_candle = st.fixed_dictionaries(
    {
        "ts": st.integers(-3, 1443).map(lambda m: at(DAY, m)),
        "open": prices,
        "high": prices,
        "low": prices,
        "close": prices,
        "volume": st.floats(-1, 10) | st.just(float("nan")),
        "quote_volume": st.none() | st.floats(-1, 10),
        "trades": st.none() | st.integers(-2, 10),
    }
)
candles = st.lists(plausible_candle() | arbitrary_candle, max_size=40)


@given(candles)
def test_validation_partitions_rows_and_good_rows_satisfy_every_bound(
    records: list[dict[str, object]],
) -> None:
    frame = silver_candles(records)
    good, bad = validate(frame, "ohlcv", interval=Interval.M1, day=DAY)
    assert len(good) + len(bad) == len(frame)
    assert (bad.get_column("reason").str.len_chars() > 0).all()
    assert good.schema == SILVER_SCHEMAS["ohlcv"]
    lo, hi, o, c = (good.get_column(n) for n in ("low", "high", "open", "close"))
    assert (lo <= o).all() and (lo <= c).all() and (hi >= o).all() and (hi >= c).all()
    assert (lo > 0).all() and (lo <= hi).all()
    assert (good.get_column("volume") >= 0).all()
    assert (
        good.select(pl.col("open", "high", "low", "close", "volume").is_finite().all()).row(0)
        == (True,) * 5
    )
    assert good.get_column("ts").dt.date().eq(DAY).all()
    assert good.select(pl.struct("symbol", "ts").is_unique().all()).item()


@given(candles, st.integers(0, 3))
def test_rows_sorted_by_key_validate_as_any_rows(
    records: list[dict[str, object]], repeats: int
) -> None:
    """`sorted_by_key` finds shared keys between neighbours; the split must not change."""
    frame = silver_candles(records + records[:repeats])
    rows = dedup_latest(frame, SILVER_KEYS["ohlcv"])
    fast = validate(rows, "ohlcv", interval=Interval.M1, day=DAY, sorted_by_key=True)
    slow = validate(rows, "ohlcv", interval=Interval.M1, day=DAY)
    assert fast[0].equals(slow[0]) and fast[1].equals(slow[1])
