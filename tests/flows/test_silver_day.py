"""`tasks.silver_day.build_day`: order of work within a day, and failures named without
stopping the rest of the day."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from models.enums import Dataset, Exchange, Interval
from models.requests import PartitionSpec
from tasks import silver_day
from tasks.silver import SilverSummary

DAY = date(2024, 3, 4)
SYMBOLS = {Dataset.OHLCV: ["BTCUSDT"], Dataset.FUNDING: ["BTCUSDT"]}
EXCHANGES = [Exchange.BINANCE, Exchange.COINBASE]


def spec(exchange: Exchange, interval: Interval | None, day: date = DAY) -> PartitionSpec:
    dataset = Dataset.OHLCV if interval else Dataset.FUNDING
    return PartitionSpec(exchange=exchange, dataset=dataset, interval=interval, day=day)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    done: list[str] = []

    def partition(s: PartitionSpec, symbols: list[str], **_: Any) -> SilverSummary:
        if s.exchange is Exchange.BINANCE and s.interval is Interval.H1:
            raise OSError("disk full")
        done.append(s.label)
        return SilverSummary(partition=s.label, rows=len(symbols))

    def aggregate(interval: Interval, day: date, exchanges: list[Exchange], **_: Any) -> Any:
        done.append(f"aggregate {interval.value} {day} {[e.value for e in exchanges]}")
        return SilverSummary(partition=f"aggregated/ohlcv/{interval.value}/{day}", rows=1)

    monkeypatch.setattr(silver_day, "build_partition", partition)
    monkeypatch.setattr(silver_day, "build_aggregate", aggregate)
    return done


def test_native_then_resampled_then_aggregates(calls: list[str]) -> None:
    specs = [
        spec(Exchange.COINBASE, Interval.H4),  # resampled from Coinbase 1h: must come after it
        spec(Exchange.COINBASE, Interval.H1),
        spec(Exchange.BINANCE, None),
        spec(Exchange.BINANCE, Interval.H4, day=date(2024, 3, 5)),  # another day: not built
    ]
    result = silver_day.build_day(DAY, specs, SYMBOLS, EXCHANGES, warehouse_uri="unused")
    assert calls == [
        "coinbase/ohlcv/1h/2024-03-04",
        "binance/funding/2024-03-04",
        "coinbase/ohlcv/4h/2024-03-04",
        "aggregate 1h 2024-03-04 ['binance', 'coinbase']",
        "aggregate 4h 2024-03-04 ['binance', 'coinbase']",
    ]
    assert [p["rows"] for p in result.partitions] == [1, 1, 1]
    assert len(result.aggregates) == 2 and result.failures == []


def test_a_failing_partition_is_named_and_the_rest_of_the_day_is_built(
    calls: list[str],
) -> None:
    specs = [spec(Exchange.BINANCE, Interval.H1), spec(Exchange.COINBASE, Interval.H1)]
    with pytest.raises(silver_day.SilverDayFailed) as failed:
        silver_day.build_day(DAY, specs, SYMBOLS, EXCHANGES, warehouse_uri="unused")
    result = failed.value.result
    assert result.failures == ["binance/ohlcv/1h/2024-03-04: OSError: disk full"]
    assert [p["partition"] for p in result.partitions] == ["coinbase/ohlcv/1h/2024-03-04"]
    assert calls[-1].startswith("aggregate 1h")  # the aggregate is still rebuilt
    assert "binance/ohlcv/1h/2024-03-04" in str(failed.value)
