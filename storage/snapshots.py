"""Instrument snapshots: each exchange's listings as stored once a day in bronze."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime

import polars as pl

from models.enums import Dataset, Exchange, Layer
from storage.layout import PartitionKey
from storage.warehouse import Warehouse


def newest_snapshots(warehouse: Warehouse) -> dict[str, date]:
    """The newest stored bronze instruments snapshot day of each exchange (one listing)."""
    newest: dict[str, date] = {}
    for key in warehouse.list_keys(Layer.BRONZE, Dataset.INSTRUMENTS.value):
        if key.exchange and (key.exchange not in newest or key.day > newest[key.exchange]):
            newest[key.exchange] = key.day
    return newest


def latest_instruments(
    warehouse: Warehouse,
    exchange: Exchange,
    *,
    newest: Mapping[str, date] | None = None,
    columns: Sequence[str] | None = None,
) -> pl.DataFrame | None:
    """The newest stored bronze instruments snapshot of an exchange (only `columns` if
    given), if any. `newest` is a `newest_snapshots` listing to reuse."""
    days = newest_snapshots(warehouse) if newest is None else newest
    day = days.get(exchange.value)
    if day is None:
        return None
    return warehouse.read(PartitionKey.instruments(exchange, day), columns=columns)


def has_fresh_snapshot(
    warehouse: Warehouse, exchange: Exchange, *, newest: Mapping[str, date] | None = None
) -> bool:
    """Whether the exchange's listings were snapshotted today (UTC)."""
    days = newest_snapshots(warehouse) if newest is None else newest
    day = days.get(exchange.value)
    return day is not None and day >= datetime.now(UTC).date()
