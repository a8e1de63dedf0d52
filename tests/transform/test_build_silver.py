"""The per-partition entry point: counts add up, schemas are exact, nothing is lost."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from models.bronze import empty_bronze
from models.coverage import COVERAGE_SCHEMA
from models.enums import Dataset, Exchange, Interval
from models.silver import SILVER_SCHEMAS
from tasks.transform import build_silver, quarantine_schema

from .builders import DAY, FETCHED, at, bronze, ms, synthetic_bronze

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def balanced(counts: dict[str, int]) -> bool:
    kept = counts.get("source_good", counts["good"])
    parts = counts["unclosed"] + counts["deduplicated"] + counts["quarantined"] + kept
    return counts["input"] == parts


def test_each_exchange_builds_a_full_clean_day() -> None:
    for exchange in Exchange:
        raw = synthetic_bronze(exchange, SYMBOLS, DAY, Interval.M5, seed=3)
        batch = build_silver(
            "ohlcv",
            raw,
            exchange=exchange.value,
            interval=Interval.M5,
            day=DAY,
            symbols=SYMBOLS,
            closed=True,
            complete=True,
            now=FETCHED,
        )
        assert batch.data.schema == SILVER_SCHEMAS["ohlcv"]
        assert batch.quarantine.schema == quarantine_schema("ohlcv")
        assert batch.coverage.schema == COVERAGE_SCHEMA
        assert batch.counts["good"] == 2 * 288 and batch.counts["gaps"] == 0
        assert batch.data.select(pl.col("symbol", "ts")).equals(
            batch.data.select(pl.col("symbol", "ts")).sort("symbol", "ts")
        )
        assert balanced(batch.counts)


def test_empty_bronze_gives_empty_data_and_full_gaps() -> None:
    batch = build_silver(
        "ohlcv",
        empty_bronze(Exchange.OKX, Dataset.OHLCV),
        exchange="okx",
        interval=Interval.H1,
        day=DAY,
        symbols=SYMBOLS,
        closed=True,
        complete=False,
        now=FETCHED,
    )
    assert batch.data.is_empty() and batch.data.schema == SILVER_SCHEMAS["ohlcv"]
    assert batch.coverage.get_column("rows_expected").to_list() == [24, 24]
    assert batch.counts == {
        "input": 0,
        "unclosed": 0,
        "deduplicated": 0,
        "quarantined": 0,
        "good": 0,
        "gaps": 2,
        "missing": 48,
    }


def test_rows_of_the_next_day_are_quarantined_and_counted() -> None:
    raw = synthetic_bronze(Exchange.BINANCE, ["BTCUSDT"], DAY, Interval.H1)
    spill = raw.tail(1).with_columns(
        pl.col("open_time") + 3_600_000,
        pl.col("close_time") + 3_600_000,
        pl.col("fetched_at") + timedelta(hours=2),
    )
    batch = build_silver(
        "ohlcv",
        pl.concat([raw, spill]),
        exchange="binance",
        interval=Interval.H1,
        day=DAY,
        symbols=["BTCUSDT"],
        closed=True,
        complete=True,
    )
    assert batch.counts["good"] == 24 and batch.counts["quarantined"] == 1
    assert batch.quarantine.get_column("reason").to_list() == [
        "ts on 2024-03-06, outside partition day 2024-03-05"
    ]
    assert batch.coverage.row(0, named=True)["quarantined"] == 1


def test_coinbase_four_hours_come_from_complete_hourly_buckets() -> None:
    raw = synthetic_bronze(Exchange.COINBASE, ["BTCUSDT"], DAY, Interval.H1)
    hours = raw.filter(pl.col("time") != int(at(DAY, 60 * 9).timestamp()))  # 08:00 bucket broken
    batch = build_silver(
        "ohlcv",
        hours,
        exchange="coinbase",
        interval=Interval.H4,
        day=DAY,
        symbols=["BTCUSDT"],
        closed=True,
        complete=True,
        now=FETCHED,
    )
    assert batch.data.get_column("interval").unique().to_list() == ["4h"]
    assert batch.data.get_column("ts").dt.hour().to_list() == [0, 4, 12, 16, 20]
    assert batch.counts["source_good"] == 23 and batch.counts["good"] == 5
    gaps = batch.coverage.row(0, named=True)["gaps"]
    assert [(g["start"], g["end"]) for g in gaps] == [(at(DAY, 480), at(DAY, 720))]
    assert balanced(batch.counts)


def test_funding_partition_uses_previous_rows_for_the_first_interval() -> None:
    records = [
        {"fundingTime": ms(at(DAY, 60 * h)), "fundingRate": "0.0001", "markPrice": ""}
        for h in (0, 4, 8, 16)
    ]
    previous = pl.DataFrame(
        [("binance", "BTCUSDT", at(DAY, -240), 0.0001, None, 4.0, 0.2)],
        schema=SILVER_SCHEMAS["funding"],
        orient="row",
    )
    batch = build_silver(
        "funding",
        bronze(Exchange.BINANCE, Dataset.FUNDING, records),
        exchange="binance",
        interval=None,
        day=DAY,
        symbols=["BTCUSDT"],
        closed=True,
        complete=True,
        previous=previous,
    )
    assert batch.data.get_column("interval_hours").to_list() == [4.0, 4.0, 4.0, 8.0]
    assert batch.coverage.row(0, named=True)["rows_expected"] is None
    assert batch.data.schema == SILVER_SCHEMAS["funding"]


def test_instruments_partition() -> None:
    records = [
        {
            "symbol": "BTCUSDT",
            "native_symbol": "BTCUSDT",
            "base": "BTC",
            "quote": "USDT",
            "kind": k,
            "status": "TRADING",
            "raw": "{}",
        }
        for k in ("spot", "perp", "option")
    ]
    batch = build_silver(
        "instruments",
        bronze(Exchange.BINANCE, Dataset.INSTRUMENTS, records),
        exchange="binance",
        interval=None,
        day=DAY,
        symbols=[],
        closed=False,
        complete=False,
    )
    assert batch.data.get_column("kind").to_list() == ["perp", "spot"]
    assert batch.quarantine.get_column("reason").to_list() == ["kind not in spot|perp"]
    assert batch.data.schema == SILVER_SCHEMAS["instruments"]


def test_open_interest_partition() -> None:
    records = [
        {
            "timestamp": ms(at(DAY, 60 * h)),
            "sumOpenInterest": "10",
            "sumOpenInterestValue": "1000",
            "source": "history",
        }
        for h in range(24)
    ]
    batch = build_silver(
        "open_interest",
        bronze(Exchange.BINANCE, Dataset.OPEN_INTEREST, records),
        exchange="binance",
        interval=None,
        day=DAY,
        symbols=["BTCUSDT"],
        closed=True,
        complete=True,
    )
    row = batch.coverage.row(0, named=True)
    assert (row["rows_present"], row["rows_expected"], row["interval"]) == (24, 24, "1h")


kline = st.fixed_dictionaries(
    {
        "minute": st.integers(-2, 1441),
        "close": st.sampled_from(["100", "101", "abc", "-1"]),
        "fetch": st.integers(0, 2),
        "forming": st.booleans(),
    }
)


@given(st.lists(kline, max_size=40))
def test_counts_add_up_for_arbitrary_bronze(rows: list[dict[str, Any]]) -> None:
    records = []
    for r in rows:
        t = ms(at(DAY, int(r["minute"])))
        records.append(
            {
                "open_time": t,
                "open": "100",
                "high": "102",
                "low": "99",
                "close": r["close"],
                "volume": "1",
                "close_time": t + 59_999 + (10**12 if r["forming"] else 0),
                "quote_volume": "",
                "trades": 1,
                "taker_buy_base": "0",
                "taker_buy_quote": "0",
                "ignore": "0",
                "fetched_at": FETCHED + timedelta(minutes=int(r["fetch"])),
            }
        )
    raw = bronze(Exchange.BINANCE, Dataset.OHLCV, records, interval="1m")
    batch = build_silver(
        "ohlcv",
        raw,
        exchange="binance",
        interval=Interval.M1,
        day=DAY,
        symbols=["BTCUSDT"],
        closed=True,
        complete=True,
        now=FETCHED,
    )
    assert balanced(batch.counts)
    assert batch.counts["good"] == len(batch.data)
    assert batch.counts["quarantined"] == len(batch.quarantine)
    row = batch.coverage.row(0, named=True)
    assert row["rows_present"] + batch.counts["missing"] == 1440
    assert row["rows_present"] == len(batch.data)
