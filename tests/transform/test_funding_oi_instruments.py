"""Golden tests of funding, open-interest and instrument normalization."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from models.enums import Dataset, Exchange
from tasks.transform import normalize_funding, normalize_instruments, normalize_open_interest
from tasks.transform.common import working_schema

from .builders import DAY, at, bronze, ms


def binance_funding(hours: list[int], rates: list[str], marks: list[str]) -> pl.DataFrame:
    records = [
        {"fundingTime": ms(at(DAY, 60 * h)), "fundingRate": r, "markPrice": m}
        for h, r, m in zip(hours, rates, marks, strict=True)
    ]
    return bronze(Exchange.BINANCE, Dataset.FUNDING, records)


def test_binance_funding_interval_switch_from_8h_to_4h() -> None:
    raw = binance_funding(
        [0, 8, 16, 20], ["0.0001", "0.0002", "-0.0001", "0.0001"], ["60000.5", "", "60100", "60200"]
    )
    out = normalize_funding(raw).sort("ts")
    assert out.schema == working_schema("funding")
    assert out.get_column("interval_hours").to_list() == [8.0, 8.0, 8.0, 4.0]
    assert out.get_column("mark_price").to_list() == [60000.5, None, 60100.0, 60200.0]
    apr = out.get_column("apr").to_list()
    assert apr[0] == pytest.approx(0.0001 * 3 * 365)
    assert apr[3] == pytest.approx(0.0001 * 6 * 365)


def test_first_event_takes_its_interval_from_previous_silver_rows() -> None:
    raw = binance_funding([0, 4], ["0.0001", "0.0001"], ["1", "1"])
    previous = pl.DataFrame(
        {"exchange": ["binance"], "symbol": ["BTCUSDT"], "ts": [at(DAY, -8 * 60)]},
        schema={"exchange": pl.String, "symbol": pl.String, "ts": pl.Datetime("ms", "UTC")},
    )
    out = normalize_funding(raw, previous).sort("ts")
    assert out.get_column("interval_hours").to_list() == [8.0, 4.0]
    assert len(out) == 2  # previous rows are context, not output


def test_a_lone_event_gets_no_invented_interval() -> None:
    out = normalize_funding(binance_funding([0], ["0.0001"], ["1"]))
    assert out.row(0, named=True)["interval_hours"] is None
    assert out.row(0, named=True)["apr"] is None


def test_funding_times_with_millisecond_jitter_round_to_whole_minutes() -> None:
    raw = binance_funding([0, 8], ["0.0001", "0.0001"], ["1", "1"]).with_columns(
        pl.Series("fundingTime", [ms(at(DAY, 0)) + 2, ms(at(DAY, 480)) + 7])
    )
    assert normalize_funding(raw).get_column("interval_hours").to_list() == [8.0, 8.0]


def test_okx_funding_prefers_the_realized_rate() -> None:
    records = [
        {
            "fundingTime": str(ms(at(DAY, 60 * h))),
            "fundingRate": "0.0002",
            "realizedRate": rr,
            "method": "next_period",
            "formulaType": "noRate",
            "instType": "SWAP",
        }
        for h, rr in [(16, "0.00015"), (8, ""), (0, None)]
    ]
    raw = bronze(Exchange.OKX, Dataset.FUNDING, records)
    out = normalize_funding(raw).sort("ts")
    assert out.get_column("funding_rate").to_list() == [0.0002, 0.0002, 0.00015]
    assert out.get_column("mark_price").null_count() == 3


def test_coinbase_has_no_funding() -> None:
    raw = binance_funding([0], ["0.0001"], ["1"]).with_columns(pl.lit("coinbase").alias("exchange"))
    with pytest.raises(ValueError, match="coinbase has no funding"):
        normalize_funding(raw)


def test_binance_open_interest_in_base_units_and_snapshots_keep_their_time() -> None:
    records = [
        {
            "timestamp": ms(at(DAY, 60)),
            "sumOpenInterest": "20403.637",
            "sumOpenInterestValue": "150570784.07",
            "source": "history",
        },
        {
            "timestamp": ms(at(DAY, 61)) + 530,
            "sumOpenInterest": "10659.509",
            "sumOpenInterestValue": "",
            "source": "snapshot",
        },
    ]
    out = normalize_open_interest(bronze(Exchange.BINANCE, Dataset.OPEN_INTEREST, records))
    assert out.schema == working_schema("open_interest")
    assert out.get_column("open_interest").to_list() == [20403.637, 10659.509]
    assert out.get_column("open_interest_value").to_list() == [150570784.07, None]
    assert out.get_column("ts").to_list()[1] == at(DAY, 61) + timedelta(milliseconds=530)


def test_okx_open_interest_uses_base_currency_not_contracts() -> None:
    records = [
        {
            "ts": str(ms(at(DAY, 60))),
            "oi": "5000",
            "oiCcy": "555.55",
            "oiUsd": "50000",
            "source": "history",
        }
    ]
    out = normalize_open_interest(bronze(Exchange.OKX, Dataset.OPEN_INTEREST, records))
    assert out.row(0, named=True)["open_interest"] == 555.55
    assert out.row(0, named=True)["open_interest_value"] == 50000.0


def test_instruments_normalize_kind_and_asset_codes() -> None:
    records = [
        {
            "symbol": "BTCUSDT",
            "native_symbol": "BTC-USDT-SWAP",
            "base": "btc",
            "quote": "usdt",
            "kind": "SWAP",
            "status": "live",
            "raw": "{}",
        },
        {
            "symbol": "BTCUSDT",
            "native_symbol": "BTC-USDT",
            "base": "BTC",
            "quote": "USDT",
            "kind": "spot",
            "status": "live",
            "raw": "{}",
        },
    ]
    out = normalize_instruments(bronze(Exchange.OKX, Dataset.INSTRUMENTS, records))
    assert out.schema == working_schema("instruments")
    assert out.select("native_symbol", "base", "quote", "kind").rows() == [
        ("BTC-USDT-SWAP", "BTC", "USDT", "perp"),
        ("BTC-USDT", "BTC", "USDT", "spot"),
    ]
