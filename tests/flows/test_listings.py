"""Listing snapshots (`storage.snapshots`, `tasks.listings`): the newest per exchange from one
listing, freshness, reading only what the symbol check needs, and the check itself."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from models.enums import Dataset, Exchange
from models.errors import InputError
from models.selection import RunRequest, Selection
from models.settings import load_settings
from storage import PartitionKey, Warehouse
from storage.snapshots import has_fresh_snapshot, latest_instruments, newest_snapshots
from tasks.listings import LISTING_COLUMNS, check_listed


def snapshot(warehouse: Warehouse, exchange: Exchange, day: date, symbols: list[str]) -> None:
    frame = pl.DataFrame(
        {
            "symbol": symbols,
            "kind": ["spot"] * len(symbols),
            "status": ["TRADING"] * len(symbols),
        }
    )
    warehouse.write(PartitionKey.instruments(exchange, day), frame, closed=False)


def test_newest_snapshot_of_each_exchange_from_one_listing(tmp_path: Path) -> None:
    warehouse = Warehouse(str(tmp_path))
    today = datetime.now(UTC).date()
    snapshot(warehouse, Exchange.BINANCE, today - timedelta(days=3), ["BTCUSDT"])
    snapshot(warehouse, Exchange.BINANCE, today, ["BTCUSDT", "ETHUSDT"])
    snapshot(warehouse, Exchange.OKX, today - timedelta(days=1), ["BTCUSDT"])

    newest = newest_snapshots(warehouse)

    assert newest == {"binance": today, "okx": today - timedelta(days=1)}
    assert has_fresh_snapshot(warehouse, Exchange.BINANCE, newest=newest)
    assert not has_fresh_snapshot(warehouse, Exchange.OKX, newest=newest)
    assert not has_fresh_snapshot(warehouse, Exchange.COINBASE)  # no snapshot at all
    latest = latest_instruments(warehouse, Exchange.BINANCE, columns=LISTING_COLUMNS)
    assert latest is not None
    assert latest.columns == list(LISTING_COLUMNS)  # only what the symbol check reads
    assert latest.get_column("symbol").to_list() == ["BTCUSDT", "ETHUSDT"]  # the newest day
    assert latest_instruments(warehouse, Exchange.COINBASE) is None


def test_a_symbol_nobody_lists_is_refused_and_one_missing_somewhere_is_a_notice(
    tmp_path: Path,
) -> None:
    warehouse = Warehouse(str(tmp_path))
    today = datetime.now(UTC).date()
    snapshot(warehouse, Exchange.BINANCE, today, ["BTCUSDT", "ETHUSDT"])
    snapshot(warehouse, Exchange.OKX, today, ["BTCUSDT"])
    listings = {
        e: frame
        for e in (Exchange.BINANCE, Exchange.OKX)
        if (frame := latest_instruments(warehouse, e, columns=LISTING_COLUMNS)) is not None
    }

    def request(symbols: list[str]) -> RunRequest:
        return Selection.parse(
            start=date(2024, 3, 1),
            end=date(2024, 3, 1),
            exchanges=[Exchange.BINANCE, Exchange.OKX],
            symbols=symbols,
            datasets=[Dataset.OHLCV],
        ).resolve(load_settings())

    notices = check_listed(request(["BTCUSDT", "ETHUSDT"]), listings)
    assert notices == ["ETHUSDT (spot) not listed on okx: skipped there"]
    with pytest.raises(InputError, match=r"DOGEUSDT \(spot\) is not listed on any of"):
        check_listed(request(["DOGEUSDT"]), listings)
