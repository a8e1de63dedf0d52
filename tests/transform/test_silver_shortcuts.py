"""Shortcuts of the silver transforms give what the full work gives: symbols and intervals
passed through when bronze already spells them as silver, the duplicate-key rule left out when
dedup found every key once, and the gap totals counted with the coverage."""

from __future__ import annotations

from typing import Any

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from models.enums import Dataset, Exchange, Interval
from models.silver import SILVER_KEYS
from tasks.transform import build_silver, dedup_latest, validate
from tasks.transform.common import dedup_latest_keyed
from tasks.transform.ohlcv import normalize_ohlcv, plain_provenance
from tasks.transform.silver_batch import _gap_counts

from .builders import DAY, at, fetched_candles, synthetic_bronze

KEYS = list(SILVER_KEYS["ohlcv"])


def test_plain_provenance_only_for_upper_case_symbols_and_unified_intervals() -> None:
    assert plain_provenance(["BTCUSDT", "ETHUSDT", None], ["1m", "1h", None])
    assert not plain_provenance(["btcusdt"], ["1m"])
    assert not plain_provenance(["BTCUSDT"], ["1H"])
    assert not plain_provenance(["ÉTHUSDT"], ["1m"])  # not ASCII: left to the normalizer


def test_normalizing_plain_bronze_passes_symbols_and_intervals_through_unchanged() -> None:
    for exchange in Exchange:
        bronze = synthetic_bronze(exchange, ["BTCUSDT", "ETHUSDT"], DAY)
        symbols = bronze.get_column("symbol").unique().to_list()
        intervals = bronze.get_column("interval").unique().to_list()
        assert plain_provenance(symbols, intervals)
        full = normalize_ohlcv(bronze, exchange=exchange.value)
        assert normalize_ohlcv(bronze, exchange=exchange.value, plain=True).equals(full)


def test_bronze_spelled_otherwise_is_still_rewritten() -> None:
    bronze = synthetic_bronze(Exchange.OKX, ["BTCUSDT"], DAY, Interval.H1).with_columns(
        pl.col("symbol").str.to_lowercase()
    )
    batch = build_silver(
        Dataset.OHLCV.value,
        bronze,
        exchange="okx",
        interval=Interval.H1,
        day=DAY,
        symbols=["BTCUSDT"],
        closed=True,
        complete=True,
    )
    assert batch.data.get_column("symbol").unique().to_list() == ["BTCUSDT"]
    assert batch.counts["good"] == 24
    native = bronze.with_columns(pl.lit("1H").alias("interval"))
    assert normalize_ohlcv(native, exchange="okx").get_column("interval").unique().to_list() == [
        "1h"
    ]


rows = st.lists(
    st.fixed_dictionaries(
        {
            "symbol": st.sampled_from(["BTCUSDT", "ETHUSDT"]),
            "minute": st.integers(0, 5),
            "close": st.sampled_from([1.0, 2.0, 3.0, 4.0]),
            "fetch": st.integers(0, 1),
        }
    ),
    max_size=20,
)


@given(rows)
def test_dedup_tells_distinct_keys_and_validation_without_the_rule_agrees(
    records: list[dict[str, Any]],
) -> None:
    frame = fetched_candles(records)
    deduped, distinct = dedup_latest_keyed(frame, KEYS)
    assert deduped.equals(dedup_latest(frame, KEYS))
    if distinct:
        assert deduped.select(KEYS).is_unique().all()
    full = validate(deduped, "ohlcv", interval=Interval.M1, day=DAY, sorted_by_key=True)
    short = validate(
        deduped, "ohlcv", interval=Interval.M1, day=DAY, sorted_by_key=True, unique_keys=distinct
    )
    assert short[0].equals(full[0]) and short[1].equals(full[1])


def test_gap_minutes_are_counted_with_the_gaps() -> None:
    bronze = synthetic_bronze(Exchange.BINANCE, ["BTCUSDT", "ETHUSDT"], DAY)
    ts = pl.col("open_time")
    start = int(at(DAY, 0).timestamp() * 1000)
    holes = (ts >= start + 60_000 * 10) & (ts < start + 60_000 * 25) | (ts == start + 60_000 * 99)
    batch = build_silver(
        Dataset.OHLCV.value,
        bronze.filter(~holes),
        exchange="binance",
        interval=Interval.M1,
        day=DAY,
        symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT"],
        closed=True,
        complete=True,
    )
    gaps, missing, minutes = _gap_counts(batch.coverage, Interval.M1)
    assert (gaps, missing) == (batch.counts["gaps"], batch.counts["missing"])
    assert (gaps, minutes) == (2 * 2 + 1, batch.gap_minutes)
    assert minutes == 2 * (15 + 1) + 24 * 60
