"""Enumerations shared by every layer: exchanges, datasets, intervals, layers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from enum import StrEnum
from typing import TypeVar

from models.errors import InputError

E = TypeVar("E", bound=StrEnum)


class Exchange(StrEnum):
    BINANCE = "binance"
    COINBASE = "coinbase"
    OKX = "okx"


class Dataset(StrEnum):
    OHLCV = "ohlcv"
    FUNDING = "funding"
    OPEN_INTEREST = "open_interest"
    INSTRUMENTS = "instruments"


class Layer(StrEnum):
    BRONZE = "bronze"
    SILVER = "silver"
    QUARANTINE = "quarantine"


class MarketKind(StrEnum):
    SPOT = "spot"
    PERP = "perp"


_INTERVAL_MS = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}


class Interval(StrEnum):
    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    H1 = "1h"
    H4 = "4h"
    D1 = "1d"

    @property
    def ms(self) -> int:
        """Length of one candle in milliseconds."""
        return _INTERVAL_MS[self.value]

    @property
    def delta(self) -> timedelta:
        return timedelta(milliseconds=self.ms)

    @property
    def per_day(self) -> int:
        """Number of candles in one UTC day."""
        return 86_400_000 // self.ms


# Which datasets each exchange offers (design.md §2).
EXCHANGE_DATASETS: dict[Exchange, frozenset[Dataset]] = {
    Exchange.BINANCE: frozenset(Dataset),
    Exchange.OKX: frozenset(Dataset),
    Exchange.COINBASE: frozenset({Dataset.OHLCV, Dataset.INSTRUMENTS}),
}

# Open-interest history is sampled at this period on every exchange.
OPEN_INTEREST_PERIOD = Interval.H1


def parse_enum_list(kind: type[E], values: str | Sequence[str]) -> list[E]:
    """Parse a comma-separated string or list into enum members, naming the first bad value."""
    raw = values.split(",") if isinstance(values, str) else list(values)
    out: list[E] = []
    for item in raw:
        text = str(item).strip()
        if not text:
            continue
        try:
            member = kind(text.lower()) if kind is not Interval else kind(text)
        except ValueError:
            allowed = ", ".join(m.value for m in kind)
            raise InputError(
                f"unknown {kind.__name__.lower()} {text!r} (allowed: {allowed})"
            ) from None
        if member not in out:
            out.append(member)
    if not out:
        raise InputError(f"no {kind.__name__.lower()} given")
    return out
