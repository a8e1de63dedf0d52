"""The pure market generator: determinism, window independence, exact aggregates, calendar."""

from __future__ import annotations

import time

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox import catalog, market
from sandbox.listing import DAY_MS, HOUR_MS
from sandbox.market import MINUTE_MS, Bar

from .helpers import FAR_FUTURE_MS, listing, ms

BTC = listing("binance", "BTCUSDT")
JAN_2024 = ms("2024-01-01")


def as_frame(c: market.Candles) -> pl.DataFrame:
    return pl.DataFrame({name: getattr(c, name) for name in market._FIELDS})


def test_same_seed_same_data_other_seed_other_data() -> None:
    a = market.minute_candles(7, BTC, JAN_2024, JAN_2024 + DAY_MS)
    b = market.minute_candles(7, BTC, JAN_2024, JAN_2024 + DAY_MS)
    c = market.minute_candles(8, BTC, JAN_2024, JAN_2024 + DAY_MS)
    assert as_frame(a).equals(as_frame(b))
    assert not np.array_equal(a.close, c.close)


@settings(max_examples=25, deadline=None)
@given(
    offset=st.integers(0, 3 * 1440),
    length=st.integers(1, 2000),
    extra_before=st.integers(0, 5000),
    extra_after=st.integers(0, 5000),
)
def test_candle_does_not_depend_on_request_window(
    offset: int, length: int, extra_before: int, extra_after: int
) -> None:
    start = JAN_2024 + offset * MINUTE_MS
    end = start + length * MINUTE_MS
    small = as_frame(market.minute_candles(7, BTC, start, end))
    wide = as_frame(
        market.minute_candles(
            7, BTC, start - extra_before * MINUTE_MS, end + extra_after * MINUTE_MS
        )
    )
    assert small.equals(wide.filter(pl.col("ts").is_between(start, end, closed="left")))


def test_ohlc_bounds_volumes_and_continuity() -> None:
    for symbol in ("BTCUSDT", "XRPUSDT", "DOGEUSDT"):
        c = market.minute_candles(7, listing("okx", symbol), JAN_2024, JAN_2024 + 3 * DAY_MS)
        assert (c.high >= np.maximum(c.open, c.close)).all()
        assert (c.low <= np.minimum(c.open, c.close)).all()
        assert (c.low > 0).all()
        assert (c.volume >= 0).all() and (c.trades >= 0).all()
        assert (c.taker_base <= c.volume).all()
        consecutive = np.diff(c.ts) == MINUTE_MS
        assert (c.open[1:][consecutive] == c.close[:-1][consecutive]).all()


@pytest.mark.parametrize(
    ("symbol", "low", "high"),
    [("BTCUSDT", 20_000, 150_000), ("ETHUSDT", 1_000, 6_000), ("SOLUSDT", 10, 300)],
)
def test_prices_are_plausible(symbol: str, low: float, high: float) -> None:
    item = listing("binance", symbol)
    minutes = np.arange(ms("2021-01-01") // MINUTE_MS, ms("2026-06-01") // MINUTE_MS, 720)
    prices = market.price(7, item, minutes)
    assert low < prices.min() and prices.max() < high


def test_exchanges_differ_by_a_small_basis() -> None:
    minutes = np.arange(JAN_2024 // MINUTE_MS, JAN_2024 // MINUTE_MS + 1440)
    binance = market.price(7, listing("binance", "BTCUSDT"), minutes)
    okx = market.price(7, listing("okx", "BTCUSDT"), minutes)
    coinbase = market.price(7, listing("coinbase", "BTCUSD"), minutes)
    for other in (okx, coinbase):
        gap = np.abs(other / binance - 1)
        assert gap.max() < 0.005 and gap.mean() > 1e-5


def fine_to_coarse(minutes: market.Candles, length: int, offset: int) -> pl.DataFrame:
    """An independent (polars) aggregation of 1m candles into fixed buckets."""
    return (
        as_frame(minutes)
        .with_columns(bucket=((pl.col("ts") - offset) // length) * length + offset)
        .group_by("bucket", maintain_order=True)
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
            pl.col("quote_volume").sum(),
            pl.col("trades").sum(),
            pl.col("taker_base").sum(),
            pl.col("taker_quote").sum(),
        )
        .rename({"bucket": "ts"})
    )


BARS = {
    "5m": Bar(5 * MINUTE_MS),
    "15m": Bar(15 * MINUTE_MS),
    "1h": Bar(HOUR_MS),
    "4h": Bar(4 * HOUR_MS),
    "1d": Bar(DAY_MS),
    "okx 1D (UTC+8)": Bar(DAY_MS, -8 * HOUR_MS),
    "okx 6H (UTC+8)": Bar(6 * HOUR_MS, -8 * HOUR_MS),
}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bar_name=st.sampled_from(sorted(BARS)),
    exchange_symbol=st.sampled_from(
        [
            ("binance", "BTCUSDT"),
            ("okx", "ETHUSDT"),
            ("coinbase", "SOLUSDT"),
            ("binance", "ENAUSDT"),
        ]
    ),
    start_minute=st.integers(0, 30 * 1440),
    span_minutes=st.integers(1, 4 * 1440),
)
def test_coarse_candles_are_exact_aggregates_of_1m(
    bar_name: str, exchange_symbol: tuple[str, str], start_minute: int, span_minutes: int
) -> None:
    bar = BARS[bar_name]
    item = listing(*exchange_symbol)
    start = ms("2024-02-20") + start_minute * MINUTE_MS
    end = start + span_minutes * MINUTE_MS
    got = as_frame(market.candles(7, item, bar, start, end, FAR_FUTURE_MS))
    first, last = bar.floor(start), bar.floor(end - 1) + bar.length_ms
    minutes = market.minute_candles(7, item, first, last)
    want = fine_to_coarse(minutes, bar.length_ms, bar.offset_ms % bar.length_ms)
    want = want.filter(pl.col("ts").is_between(start, end, closed="left"))
    assert got.equals(want.select(got.columns))


def test_weekly_and_monthly_bars_aggregate_days() -> None:
    item = listing("binance", "ETHUSDT")
    days = market.candles(7, item, Bar(DAY_MS), ms("2024-01-01"), ms("2024-04-01"), FAR_FUTURE_MS)
    months = market.candles(
        7, item, Bar(31 * DAY_MS, 0, months=1), ms("2024-01-01"), ms("2024-04-01"), FAR_FUTURE_MS
    )
    assert months.ts.tolist() == [ms("2024-01-01"), ms("2024-02-01"), ms("2024-03-01")]
    feb = (days.ts >= ms("2024-02-01")) & (days.ts < ms("2024-03-01"))
    assert months.volume[1] == days.volume[feb].sum()
    assert months.high[1] == days.high[feb].max()
    weeks = market.candles(7, item, Bar(7 * DAY_MS, 4 * DAY_MS), ms("2024-01-01"),
                           ms("2024-02-01"), FAR_FUTURE_MS)  # fmt: skip
    assert weeks.ts[0] == ms("2024-01-01")  # a Monday


def test_listing_date_enausdt_2024() -> None:
    ena = listing("binance", "ENAUSDT")
    assert ena.listed_ms == ms("2024-04-02T08:00:00")
    c = market.minute_candles(7, ena, ms("2024-04-01"), ms("2024-04-03"))
    assert c.ts[0] == ms("2024-04-02T08:00:00")
    assert len(market.minute_candles(7, ena, ms("2024-01-01"), ms("2024-04-02"))) == 0
    daily = market.candles(7, ena, Bar(DAY_MS), ms("2024-03-25"), ms("2024-04-05"), FAR_FUTURE_MS)
    assert daily.ts[0] == ms("2024-04-02")


def test_unlisted_markets() -> None:
    assert catalog.by_symbol("coinbase", "spot", "BNBUSDT") is None
    assert catalog.by_symbol("coinbase", "spot", "BNBUSD") is None
    assert catalog.by_symbol("coinbase", "perp", "BTCUSDT") is None
    assert catalog.by_native("coinbase", "spot", "BTC-USDT") is not None
    for exchange in ("binance", "okx"):
        for base in ("BTC", "ETH", "SOL", "BNB", "XRP"):
            assert catalog.by_symbol(exchange, "perp", f"{base}USDT") is not None
            assert catalog.by_symbol(exchange, "spot", f"{base}USDT") is not None


def test_documented_maintenance_gap_binance_2024_02_29() -> None:
    start, end = ms("2024-02-29T02:00:00"), ms("2024-02-29T05:00:00")
    binance = market.minute_candles(7, BTC, start, end)
    gap = (binance.ts >= ms("2024-02-29T03:00:00")) & (binance.ts < ms("2024-02-29T03:30:00"))
    assert not gap.any()
    assert len(binance) == 180 - 30
    okx = market.minute_candles(7, listing("okx", "BTCUSDT"), start, end)
    assert len(okx) == 180
    # A coarse bucket whose minutes are all missing is absent; partial buckets stay.
    q = market.candles(7, BTC, Bar(15 * MINUTE_MS), start, end, FAR_FUTURE_MS)
    assert ms("2024-02-29T03:00:00") not in q.ts and ms("2024-02-29T03:15:00") not in q.ts
    assert len(q) == 12 - 2
    perp = market.minute_candles(7, listing("binance", "BTCUSDT", "perp"), start, end)
    assert len(perp) == 150


def test_seeded_gaps_are_rare_and_deterministic() -> None:
    first, last = ms("2023-01-01") // DAY_MS, ms("2025-01-01") // DAY_MS
    gaps = market.gap_days(7, "okx", first, last)
    assert gaps == market.gap_days(7, "okx", first, last)
    assert 0 < len(gaps) < 20
    assert all(5 <= minutes <= 30 for _, minutes in gaps)


def test_unfinished_candle_is_partial() -> None:
    now = ms("2024-03-01T10:17:30")
    later = ms("2024-03-02")
    c = market.candles(7, BTC, Bar(HOUR_MS), ms("2024-03-01T08:00:00"), later, now)
    assert c.ts.tolist() == [ms("2024-03-01T08:00:00"), ms("2024-03-01T09:00:00"),
                             ms("2024-03-01T10:00:00")]  # fmt: skip
    closed = market.candles(7, BTC, Bar(HOUR_MS), ms("2024-03-01T10:00:00"), later, later)
    assert c.volume[-1] < closed.volume[0]
    minute = market.candles(7, BTC, Bar(MINUTE_MS), now - 5 * MINUTE_MS, later, now)
    assert minute.ts[-1] == ms("2024-03-01T10:17:00")


def test_funding_intervals_and_the_documented_switch() -> None:
    sol = listing("binance", "SOLUSDT", "perp")
    times, hours = market.funding_times(sol, ms("2024-05-31"), ms("2024-06-02"))
    steps = np.diff(times) // HOUR_MS
    assert times[0] == ms("2024-05-31") and set(hours.tolist()) == {8, 4}
    before = times < catalog.SOL_FUNDING_SWITCH_MS
    assert (steps[before[:-1] & before[1:]] == 8).all()
    assert (steps[~before[:-1]] == 4).all()
    ena = listing("okx", "ENAUSDT", "perp")
    times, _ = market.funding_times(ena, ms("2024-06-01"), ms("2024-06-02"))
    assert len(times) == 6
    btc = listing("okx", "BTCUSDT", "perp")
    f = market.funding(7, btc, ms("2024-06-01"), ms("2024-06-11"))
    assert len(f) == 30 and (np.abs(f.rate) < 0.005).all() and (f.mark > 10_000).all()


def test_year_of_1m_candles_is_fast() -> None:
    item = listing("okx", "SOLUSDT")
    started = time.perf_counter()
    c = market.minute_candles(7, item, ms("2023-01-01"), ms("2024-01-01"))
    elapsed = time.perf_counter() - started
    assert len(c) > 520_000
    assert elapsed < 2.0, f"a year of 1m candles took {elapsed:.2f}s"


def test_normal_hashes_three_uniforms_in_one_pass() -> None:
    index = np.arange(-5, 2000, 7, dtype=np.int64)
    key = market.stable_key(7, "asset", "BTC")
    three = market.uniform(key, index) + market.uniform(key ^ 0x5555, index)
    three = three + market.uniform(key ^ 0xAAAA, index)
    assert np.array_equal(market.normal(key, index), (three - 1.5) * 2.0)  # bit for bit
    pinned = [0.5665615751722809, 0.8833108082136426]  # values before the hashing was batched
    assert market.uniform(1, np.array([0, 1], dtype=np.int64)).tolist() == pinned
