"""Discarding on purpose (`storage.discard`) and planning around files that are gone."""

from __future__ import annotations

import logging
from datetime import date, timedelta

import pytest

from models.coverage import COVERAGE_SCHEMA
from models.dates import DateRange
from models.enums import Dataset, Exchange, Interval, Layer
from models.partitions import PartitionSpec
from models.selection import RunRequest
from storage import PartitionKey, Warehouse
from storage.discard import DISCARDED, discard
from storage.planning import plan
from tests.storage.frames import ohlcv
from tests.storage.test_storage_coverage import frame, rec

DAY = date(2024, 3, 4)


def spec(
    day: date = DAY, interval: Interval = Interval.H1, exchange: Exchange = Exchange.BINANCE
) -> PartitionSpec:
    return PartitionSpec(exchange=exchange, dataset=Dataset.OHLCV, interval=interval, day=day)


def store_day(
    warehouse: Warehouse, s: PartitionSpec, layers: tuple[Layer, ...] = (Layer.SILVER,)
) -> None:
    """A written day of `s` in `layers` with its coverage recorded complete (and stamped)."""
    assert s.interval is not None
    data = ohlcv(s.exchange.value, s.interval.value, s.day, ["BTCUSDT"])
    for layer in layers:
        written = warehouse.write(PartitionKey.of(s, layer), data, closed=True)
        record = rec(
            "BTCUSDT", s.day, exchange=s.exchange.value, interval=s.interval.value, rows=24
        )
        warehouse.coverage.upsert(written.stamp_records(frame({**record, "layer": layer.value})))


def request(days: int = 1, **extra: object) -> RunRequest:
    return RunRequest(
        days=DateRange(start=DAY, end=DAY + timedelta(days=days - 1)),
        exchanges=(Exchange.BINANCE,),
        datasets=(Dataset.OHLCV,),
        intervals=(Interval.H1,),
        symbols=("BTCUSDT",),
        perp_symbols=("BTCUSDT",),
        **extra,  # type: ignore[arg-type]
    )


def test_a_complete_partition_whose_file_is_gone_is_planned_again(warehouse: Warehouse) -> None:
    """Injected: the file of a day recorded complete removed behind the index's back. Held:
    planning lists it (named as damaged: missing) in both layers, while the untouched day
    stays skipped; a day recorded complete with no rows (nothing to store) is not redone."""
    for day in (DAY, DAY + timedelta(days=1)):
        store_day(warehouse, spec(day), (Layer.BRONZE, Layer.SILVER))
    empty = rec("BTCUSDT", DAY + timedelta(days=2), interval="1h", rows=0)
    warehouse.coverage.upsert(frame({**empty, "layer": "bronze"}, empty))
    for layer in (Layer.BRONZE, Layer.SILVER):
        warehouse.store.delete(PartitionKey.of(spec(), layer).path)
        todo = plan(warehouse, layer, request(days=3))
        assert list(todo) == [spec()]
        assert todo.damaged[spec()].startswith("missing: no file at")


def test_discard_removes_the_series_files_and_resets_coverage(
    warehouse: Warehouse, caplog: pytest.LogCaptureFixture
) -> None:
    """Injected: a discard of Binance 1h over two of three stored days. Held: only those
    days' files go, in every layer; other intervals, exchanges and days stay; their coverage
    records read back discarded (not complete, no rows), so planning redoes exactly those
    days; each removed file is logged."""
    days = [DAY + timedelta(days=i) for i in range(3)]
    for day in days:
        store_day(warehouse, spec(day), (Layer.BRONZE, Layer.SILVER, Layer.QUARANTINE))
    store_day(warehouse, spec(DAY, Interval.M5), (Layer.BRONZE, Layer.SILVER))
    store_day(warehouse, spec(DAY, exchange=Exchange.OKX), (Layer.BRONZE, Layer.SILVER))

    with caplog.at_level(logging.WARNING, logger="crypto_pipeline.discard"):
        report = discard(
            warehouse,
            dataset="ohlcv",
            exchange="binance",
            interval="1h",
            start=days[0],
            end=days[1],
            reason="bad exchange revision",
        )
    assert len(report.files) == 6 and report.records == 6
    gone = {
        PartitionKey.of(spec(d), layer)
        for d in days[:2]
        for layer in (Layer.BRONZE, Layer.SILVER, Layer.QUARANTINE)
    }
    for key in gone:
        assert not warehouse.exists(key)
        assert any(warehouse.path(key) in r.getMessage() for r in caplog.records)
    assert "bad exchange revision" in caplog.text
    for kept in (spec(days[2]), spec(DAY, Interval.M5), spec(DAY, exchange=Exchange.OKX)):
        assert warehouse.exists(PartitionKey.of(kept, Layer.SILVER))

    records = warehouse.coverage.query(
        exchange="binance", interval="1h", start=days[0], end=days[1]
    )
    assert records.height == 6
    assert not records.get_column("complete").any()
    assert set(records.get_column("rows_present")) == {0}
    assert set(records.get_column("gap_reason")) == {DISCARDED}
    assert records.schema == COVERAGE_SCHEMA
    for layer in (Layer.BRONZE, Layer.SILVER):
        assert list(plan(warehouse, layer, request(days=3))) == [spec(days[0]), spec(days[1])]


def test_discard_refuses_what_it_cannot_name(warehouse: Warehouse) -> None:
    """Injected: a reversed range, an unknown exchange, an interval on funding, the aggregate.
    Held: each is refused before anything is removed."""
    store_day(warehouse, spec(), (Layer.SILVER,))
    bad = [
        {"dataset": "ohlcv", "exchange": "binance", "start": DAY, "end": DAY - timedelta(days=1)},
        {"dataset": "ohlcv", "exchange": "kraken", "start": DAY, "end": DAY},
        {"dataset": "funding", "exchange": "binance", "start": DAY, "end": DAY, "interval": "1h"},
        {"dataset": "ohlcv_aggregated", "exchange": "binance", "start": DAY, "end": DAY},
    ]
    for args in bad:
        with pytest.raises(ValueError):
            discard(warehouse, **args)  # type: ignore[arg-type]
    assert warehouse.exists(PartitionKey.of(spec(), Layer.SILVER))
    assert warehouse.coverage.query(layer=Layer.SILVER).get_column("complete").all()
