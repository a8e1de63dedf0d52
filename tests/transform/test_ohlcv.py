"""Golden tests of OHLCV normalization per exchange, dedup and 1h→4h resampling."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.enums import Dataset, Exchange, Interval
from models.silver import SILVER_KEYS, SILVER_SCHEMAS
from tasks.transform import dedup_latest, normalize_ohlcv, resample_ohlcv
from tasks.transform.common import working_schema

from .builders import DAY, FETCHED, at, bronze, fetched_candles, ms, silver_candles

KEYS = list(SILVER_KEYS["ohlcv"])


def kline(open_time: datetime, o: str, h: str, low: str, c: str, close_ms: int | None = None):
    t = ms(open_time)
    return {
        "open_time": t,
        "open": o,
        "high": h,
        "low": low,
        "close": c,
        "volume": "2.5",
        "close_time": close_ms if close_ms is not None else t + 59_999,
        "quote_volume": "250.0",
        "trades": 7,
        "taker_buy_base": "1",
        "taker_buy_quote": "100",
        "ignore": "0",
    }


def test_binance_klines_parse_and_drop_the_forming_candle() -> None:
    fetched = at(DAY, 3) + timedelta(seconds=20)
    raw = bronze(
        Exchange.BINANCE,
        Dataset.OHLCV,
        [
            kline(at(DAY, 0), "100.0", "101.5", "99.5", "101.0"),
            kline(at(DAY, 1), "101.0", "102.0", "100.0", "100.5"),
            kline(at(DAY, 2), "100.5", "100.9", "100.1", "100.2"),
            kline(at(DAY, 3), "100.2", "100.3", "100.0", "100.1"),  # closes after the fetch
        ],
        interval="1m",
        fetched_at=fetched,
    )
    out = normalize_ohlcv(raw)
    assert out.schema == working_schema("ohlcv")
    assert out.get_column("ts").to_list() == [at(DAY, m) for m in range(3)]
    first = out.row(0, named=True)
    assert first == {
        "exchange": "binance",
        "symbol": "BTCUSDT",
        "interval": "1m",
        "ts": at(DAY, 0),
        "open": 100.0,
        "high": 101.5,
        "low": 99.5,
        "close": 101.0,
        "volume": 2.5,
        "quote_volume": 250.0,
        "trades": 7,
        "fetched_at": fetched,
    }


def test_binance_candle_closing_exactly_at_fetch_time_is_forming() -> None:
    fetched = at(DAY, 1)
    row = kline(at(DAY, 0), "1", "1", "1", "1", close_ms=ms(fetched))
    assert normalize_ohlcv(
        bronze(Exchange.BINANCE, Dataset.OHLCV, [row], fetched_at=fetched)
    ).is_empty()


def okx_row(moment: datetime, confirm: str, close: str = "24323") -> dict[str, str]:
    return {
        "ts": str(ms(moment)),
        "o": "24341.4",
        "h": "24344",
        "l": "24313.2",
        "c": close,
        "vol": "2.5819",
        "volCcy": "62800",
        "volCcyQuote": "62800.5",
        "confirm": confirm,
    }


def test_okx_candles_drop_unconfirmed_and_use_quote_volume() -> None:
    raw = bronze(
        Exchange.OKX,
        Dataset.OHLCV,
        [okx_row(at(DAY, 2), "0"), okx_row(at(DAY, 1), "1"), okx_row(at(DAY, 0), "1")],
        interval="1m",
    )
    out = normalize_ohlcv(raw).sort("ts")
    assert out.schema == working_schema("ohlcv")
    assert out.get_column("ts").to_list() == [at(DAY, 0), at(DAY, 1)]
    assert out.get_column("volume").to_list() == [2.5819, 2.5819]
    assert out.get_column("quote_volume").to_list() == [62800.5, 62800.5]
    assert out.get_column("trades").null_count() == 2
    assert out.get_column("symbol").to_list() == ["BTCUSDT", "BTCUSDT"]


def test_okx_native_bar_names_map_to_unified_intervals() -> None:
    raw = bronze(Exchange.OKX, Dataset.OHLCV, [okx_row(at(DAY, 0), "1")], interval="1Dutc")
    assert normalize_ohlcv(raw).get_column("interval").to_list() == ["1d"]


def test_coinbase_seconds_become_milliseconds_and_quote_volume_stays_null() -> None:
    fetched = at(DAY, 61)
    rows = [
        {
            "time": int(at(DAY, 60).timestamp()),
            "low": 9.0,
            "high": 11.0,
            "open": 10.0,
            "close": 10.5,
            "volume": 3.0,
        },  # forming: ends at 02:00, fetched at 01:01
        {
            "time": int(at(DAY, 0).timestamp()),
            "low": 9.5,
            "high": 10.5,
            "open": 10.0,
            "close": 10.2,
            "volume": 4.0,
        },
    ]
    raw = bronze(
        Exchange.COINBASE, Dataset.OHLCV, rows, symbol="BTCUSDT", interval="1h", fetched_at=fetched
    )
    out = normalize_ohlcv(raw)
    assert out.schema == working_schema("ohlcv")
    assert out.get_column("ts").to_list() == [at(DAY, 0)]
    assert out.get_column("ts").dt.epoch("ms").to_list() == [ms(at(DAY, 0))]
    assert out.row(0, named=True)["quote_volume"] is None
    assert out.row(0, named=True)["trades"] is None
    assert out.row(0, named=True)["volume"] == 4.0


def test_unparseable_numbers_become_null_not_errors() -> None:
    row = kline(at(DAY, 0), "abc", "1", "1", "")
    out = normalize_ohlcv(bronze(Exchange.BINANCE, Dataset.OHLCV, [row]))
    assert out.row(0, named=True)["open"] is None
    assert out.row(0, named=True)["close"] is None


def test_empty_bronze_gives_an_empty_frame_in_the_working_schema() -> None:
    empty = pl.DataFrame(schema=bronze(Exchange.OKX, Dataset.OHLCV, []).schema)
    assert normalize_ohlcv(empty).schema == working_schema("ohlcv")
    assert normalize_ohlcv(empty).is_empty()


def test_unknown_exchange_is_refused_by_name() -> None:
    raw = bronze(Exchange.BINANCE, Dataset.OHLCV, [kline(at(DAY, 0), "1", "1", "1", "1")])
    with pytest.raises(ValueError, match="kraken"):
        normalize_ohlcv(raw.with_columns(pl.lit("kraken").alias("exchange")))


# --- dedup ------------------------------------------------------------------------------


def with_fetch(frame: pl.DataFrame, fetched: list[datetime]) -> pl.DataFrame:
    return frame.with_columns(pl.Series("fetched_at", fetched, dtype=pl.Datetime("ms", "UTC")))


def test_dedup_keeps_the_latest_fetch_and_collapses_exact_repeats() -> None:
    old, new = FETCHED, FETCHED + timedelta(hours=1)
    candles = silver_candles(
        [
            {"ts": at(DAY, 0), "open": 1.0, "high": 2.0, "low": 1.0, "close": 1.5, "volume": 1.0},
            {"ts": at(DAY, 0), "open": 1.0, "high": 2.0, "low": 1.0, "close": 1.7, "volume": 1.0},
            {"ts": at(DAY, 1), "open": 1.0, "high": 2.0, "low": 1.0, "close": 1.5, "volume": 1.0},
            {"ts": at(DAY, 1), "open": 1.0, "high": 2.0, "low": 1.0, "close": 1.5, "volume": 1.0},
        ]
    )
    out = dedup_latest(with_fetch(candles, [old, new, new, new]), KEYS)
    assert out.get_column("close").to_list() == [1.7, 1.5]
    assert out.get_column("fetched_at").to_list() == [new, new]


row_strategy = st.fixed_dictionaries(
    {
        "symbol": st.sampled_from(["BTCUSDT", "ETHUSDT"]),
        "minute": st.integers(0, 5),
        "close": st.sampled_from([1.0, 2.0, 3.0]),
        "fetch": st.integers(0, 2),
    }
)


@given(st.lists(row_strategy, max_size=30), st.randoms(use_true_random=False))
def test_dedup_is_idempotent_and_independent_of_row_order(
    rows: list[dict[str, Any]], rnd: random.Random
) -> None:
    frame = fetched_candles(rows)
    once = dedup_latest(frame, KEYS)
    assert once.equals(dedup_latest(once, KEYS))
    shuffled = list(range(len(frame)))
    rnd.shuffle(shuffled)
    assert once.equals(dedup_latest(frame[shuffled], KEYS))
    # Only the latest fetch of each key survives.
    latest = frame.group_by(KEYS).agg(pl.col("fetched_at").max())
    assert (
        once.join(latest, on=KEYS)
        .filter(pl.col("fetched_at") != pl.col("fetched_at_right"))
        .is_empty()
    )


# --- resampling ---------------------------------------------------------------------------


def hourly(hours: list[int], *, quote: list[float | None] | None = None) -> pl.DataFrame:
    records = [
        {
            "exchange": "coinbase",
            "interval": "1h",
            "ts": at(DAY, 60 * h),
            "open": 10.0 + h,
            "high": 20.0 + h,
            "low": 5.0 - h * 0.1,
            "close": 11.0 + h,
            "volume": 1.0 + h,
            "quote_volume": None if quote is None else quote[i],
            "trades": None,
        }
        for i, h in enumerate(hours)
    ]
    return silver_candles(records)


def test_resample_builds_only_complete_four_hour_buckets() -> None:
    out = resample_ohlcv(hourly([0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11]), Interval.H4)
    assert out.schema == SILVER_SCHEMAS["ohlcv"]
    assert out.get_column("ts").to_list() == [at(DAY, 0), at(DAY, 480)]
    first = out.row(0, named=True)
    assert (first["open"], first["high"], first["low"], first["close"]) == (10.0, 23.0, 4.7, 14.0)
    assert first["volume"] == 1 + 2 + 3 + 4
    assert first["interval"] == "4h"
    assert first["quote_volume"] is None


def test_resample_sums_quote_volume_only_when_every_hour_has_it() -> None:
    out = resample_ohlcv(
        hourly(list(range(8)), quote=[1.0, 2.0, 3.0, 4.0, 1.0, None, 1.0, 1.0]), Interval.H4
    )
    assert out.get_column("quote_volume").to_list() == [10.0, None]


def test_resample_refuses_a_target_that_is_not_a_multiple() -> None:
    with pytest.raises(ValueError, match="cannot resample"):
        resample_ohlcv(hourly([0]).with_columns(pl.lit("4h").alias("interval")), Interval.H1)


@given(st.sets(st.integers(0, 23), max_size=24), st.integers(0, 2**16))
def test_resample_equals_a_plain_aggregate_of_complete_buckets(hours: set[int], seed: int) -> None:
    rnd = random.Random(seed)
    records: list[dict[str, Any]] = []
    for h in sorted(hours):
        o, c = rnd.uniform(90, 110), rnd.uniform(90, 110)
        records.append(
            {
                "exchange": "coinbase",
                "interval": "1h",
                "ts": at(DAY, 60 * h),
                "open": o,
                "high": max(o, c) + rnd.random(),
                "low": min(o, c) - rnd.random(),
                "close": c,
                "volume": rnd.random(),
                "quote_volume": rnd.random(),
                "trades": rnd.randint(0, 9),
            }
        )
    out = resample_ohlcv(silver_candles(records), Interval.H4)
    expected = []
    for bucket in range(6):
        rows = [r for r in records if int(r["ts"].hour) // 4 == bucket]
        if len(rows) != 4:
            continue
        expected.append(
            (
                rows[0]["ts"],
                rows[0]["open"],
                max(r["high"] for r in rows),
                min(r["low"] for r in rows),
                rows[-1]["close"],
                sum(r["volume"] for r in rows),
                sum(r["trades"] for r in rows),
            )
        )
    got = out.select("ts", "open", "high", "low", "close", "volume", "trades").rows()
    assert [(*g[:5], pytest.approx(g[5]), g[6]) for g in got] == expected
    assert out.schema == SILVER_SCHEMAS["ohlcv"]


def test_binance_microsecond_timestamps_are_scaled_to_milliseconds() -> None:
    row = kline(at(DAY, 0), "1", "1", "1", "1")
    row["open_time"] *= 1000
    row["close_time"] = row["close_time"] * 1000 + 999
    out = normalize_ohlcv(bronze(Exchange.BINANCE, Dataset.OHLCV, [row], interval="1m"))
    assert out.get_column("ts").to_list() == [at(DAY, 0)]


def test_dedup_without_fetched_at_collapses_exact_repeats_only() -> None:
    rows = [
        {"ts": at(DAY, 0), "open": 1.0, "high": 1.0, "low": 1.0, "close": c, "volume": 1.0}
        for c in (1.0, 1.0, 1.0)
    ]
    rows[2] = {**rows[2], "volume": 2.0}
    assert len(dedup_latest(silver_candles(rows), KEYS)) == 2
