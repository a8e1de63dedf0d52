"""Cross-exchange aggregation: identity, bounds, outliers and the quote-currency rule."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.silver import SILVER_SCHEMAS
from tasks.transform import aggregate_ohlcv
from tasks.transform.aggregate import _flagged

from .builders import DAY, at, silver_candles


def venue(exchange: str, close: float, volume: float = 1.0, **kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "exchange": exchange,
        "ts": at(DAY, 0),
        "open": close,
        "high": close * 1.001,
        "low": close * 0.999,
        "close": close,
        "volume": volume,
        "quote_volume": close * volume,
    }
    return {**row, **kw}


def test_highest_volume_venue_sets_open_and_close_and_sums_are_null_safe() -> None:
    frame = silver_candles(
        [
            venue("binance", 100.0, 5.0, open=99.0, quote_volume=501.0),
            venue("coinbase", 100.2, 1.0, quote_volume=None),
            venue("okx", 100.1, 2.0),
        ]
    )
    agg, excluded = aggregate_ohlcv(frame)
    assert agg.schema == SILVER_SCHEMAS["ohlcv_aggregated"]
    assert excluded.is_empty()
    row = agg.row(0, named=True)
    assert (row["open"], row["close"], row["volume"]) == (99.0, 100.0, 8.0)
    assert row["quote_volume"] == pytest.approx(501.0 + 100.2 * 1.0 + 100.1 * 2.0)
    assert (row["n_exchanges"], row["exchanges"]) == (3, ["binance", "coinbase", "okx"])
    assert row["high"] == pytest.approx(100.2 * 1.001)
    assert row["low"] == pytest.approx(100.0 * 0.999)
    typical = [(100.0 * 3) / 3 * 5, 100.2 * 1, 100.1 * 2]
    assert row["vwap"] == pytest.approx(sum(typical) / 8, rel=1e-6)


def test_a_venue_far_from_the_median_is_excluded_with_a_reason() -> None:
    frame = silver_candles(
        [
            venue("binance", 100.0),
            venue("okx", 100.1),
            venue("coinbase", 112.0),
            venue("kraken", 100.05),
        ]
    )
    agg, excluded = aggregate_ohlcv(frame)
    assert agg.row(0, named=True)["exchanges"] == ["binance", "kraken", "okx"]
    assert excluded.get_column("exchange").to_list() == ["coinbase"]
    assert "from the median of 4 venues" in excluded.row(0, named=True)["reason"]


def test_near_equal_venues_are_kept_even_when_the_mad_is_tiny() -> None:
    frame = silver_candles(
        [venue("binance", 100.0), venue("okx", 100.0), venue("coinbase", 100.05)]
    )
    agg, excluded = aggregate_ohlcv(frame)
    assert excluded.is_empty()
    assert agg.row(0, named=True)["n_exchanges"] == 3


def test_of_two_diverging_venues_the_lower_volume_one_is_excluded() -> None:
    frame = silver_candles([venue("binance", 100.0, 9.0), venue("okx", 104.0, 1.0)])
    agg, excluded = aggregate_ohlcv(frame)
    assert agg.row(0, named=True)["exchanges"] == ["binance"]
    assert excluded.get_column("exchange").to_list() == ["okx"]
    close_pair = silver_candles([venue("binance", 100.0, 9.0), venue("okx", 101.0, 1.0)])
    assert aggregate_ohlcv(close_pair)[1].is_empty()


def test_usd_and_usdt_are_never_mixed() -> None:
    frame = silver_candles([venue("binance", 100.0), venue("coinbase", 100.0, symbol="BTCUSD")])
    agg, _ = aggregate_ohlcv(frame)
    assert agg.select("symbol", "exchanges").rows() == [("BTCUSDT", ["binance"])]
    usd, _ = aggregate_ohlcv(frame, quote="USD")
    assert usd.select("symbol", "exchanges").rows() == [("BTCUSD", ["coinbase"])]


def test_zero_volume_falls_back_to_the_mean_close() -> None:
    frame = silver_candles([venue("binance", 100.0, 0.0), venue("okx", 100.4, 0.0)])
    assert aggregate_ohlcv(frame)[0].row(0, named=True)["vwap"] == pytest.approx(100.2)


@st.composite
def venue_candles(draw: st.DrawFn, exchanges: list[str]) -> list[dict[str, object]]:
    rows = []
    for minute in range(draw(st.integers(1, 4))):
        for exchange in exchanges:
            o, c = draw(st.floats(90, 110)), draw(st.floats(90, 110))
            rows.append(
                {
                    "exchange": exchange,
                    "ts": at(DAY, minute),
                    "open": o,
                    "close": c,
                    "high": max(o, c) + draw(st.floats(0, 3)),
                    "low": min(o, c) - draw(st.floats(0, 3)),
                    "volume": draw(st.floats(0, 50)),
                    "quote_volume": draw(st.none() | st.floats(0, 5000)),
                    "trades": None,
                }
            )
    return rows


@given(venue_candles(["binance"]))
def test_aggregating_one_venue_is_the_identity(rows: list[dict[str, object]]) -> None:
    frame = silver_candles(rows)
    agg, excluded = aggregate_ohlcv(frame)
    assert excluded.is_empty()
    cols = ["symbol", "interval", "ts", "open", "high", "low", "close", "volume"]
    assert agg.select(cols).equals(frame.select(cols))
    assert (agg.get_column("n_exchanges") == 1).all()


VENUES = ["binance", "coinbase", "okx", "kraken"]


@given(st.integers(2, 4).flatmap(lambda n: venue_candles(VENUES[:n])))
def test_aggregate_bounds_hold_over_included_venues(rows: list[dict[str, object]]) -> None:
    frame = silver_candles(rows)
    agg, excluded = aggregate_ohlcv(frame)
    keys = ["symbol", "interval", "ts"]
    kept = frame.join(excluded.select(*keys, "exchange"), on=[*keys, "exchange"], how="anti")
    assert len(kept) + len(excluded) == len(frame)
    assert len(agg) == frame.select(keys).n_unique()
    joined = kept.join(agg, on=keys, suffix="_agg")
    assert (joined.get_column("low_agg") <= joined.get_column("low")).all()
    assert (joined.get_column("high_agg") >= joined.get_column("high")).all()
    assert (agg.get_column("vwap") >= agg.get_column("low")).all()
    assert (agg.get_column("vwap") <= agg.get_column("high")).all()
    sums = kept.group_by(keys).agg(pl.col("volume").sum().alias("v"), pl.len().alias("n"))
    check = agg.join(sums, on=keys)
    assert (check.get_column("n_exchanges") == check.get_column("n")).all()
    assert ((check.get_column("volume") - check.get_column("v")).abs() < 1e-9).all()


@st.composite
def mixed_groups(draw: st.DrawFn) -> list[dict[str, object]]:
    """Candles of 1-4 venues a minute over two symbols, with repeated closes and volumes (ties
    of the median and of the top venue) as often as distinct ones."""
    price = st.sampled_from([100.0, 100.5, 103.0]) | st.floats(50, 150)
    size = st.sampled_from([0.0, 2.0]) | st.floats(0, 50)
    rows = []
    for symbol in ("BTCUSDT", "ETHUSDT"):
        for minute in range(draw(st.integers(1, 6))):
            for exchange in draw(st.lists(st.sampled_from(VENUES), min_size=1, unique=True)):
                close = draw(price)
                rows.append(
                    {
                        "symbol": symbol,
                        "exchange": exchange,
                        "ts": at(DAY, minute),
                        "open": close,
                        "close": close,
                        "high": close + 1,
                        "low": close - 1,
                        "volume": draw(size),
                        "quote_volume": None,
                        "trades": None,
                    }
                )
    return rows


@given(mixed_groups(), st.sampled_from([0.001, 0.005, 0.02]))
def test_small_groups_flagged_from_their_neighbours_equal_the_windows(
    rows: list[dict[str, object]], pair_deviation: float
) -> None:
    frame = silver_candles(rows).sample(fraction=1.0, shuffle=True, seed=1)
    args = (5.0, 0.005, pair_deviation)
    fast = _flagged(frame, *args)
    windows = _flagged(frame, *args, small_apart=False)
    # `_vpos` is read only within a group (its order there), the MAD only in groups of 3+
    read = [
        pl.col("_vpos").rank("ordinal").over("_g"),
        pl.when(pl.col("_n") >= 3).then(pl.col("_mad")),
    ]
    assert fast.with_columns(read).equals(windows.with_columns(read))
