"""Partition identity: one exchange's dataset (and interval) for one UTC day, all symbols."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict

from models.enums import Dataset, Exchange, Interval

# Coinbase Exchange has no 4h candles; silver resamples them from 1h.
NATIVE_INTERVALS: dict[Exchange, frozenset[Interval]] = {
    Exchange.BINANCE: frozenset(Interval),
    Exchange.OKX: frozenset(Interval),
    Exchange.COINBASE: frozenset(Interval) - {Interval.H4},
}
# The interval a derived interval is resampled from.
RESAMPLED_FROM: dict[Interval, Interval] = {Interval.H4: Interval.H1}

# Datasets fetched per day (instruments are a current snapshot, fetched once a run).
DAILY_DATASETS = tuple(d for d in Dataset if d is not Dataset.INSTRUMENTS)


class PartitionSpec(BaseModel):
    """One unit of work: an exchange's dataset (and interval) for one UTC day, all symbols."""

    model_config = ConfigDict(frozen=True)

    exchange: Exchange
    dataset: Dataset
    interval: Interval | None
    day: date

    @property
    def label(self) -> str:
        iv = f"/{self.interval.value}" if self.interval else ""
        return f"{self.exchange.value}/{self.dataset.value}{iv}/{self.day.isoformat()}"

    @property
    def is_native(self) -> bool:
        """Whether the exchange serves this partition (else silver derives it)."""
        return self.interval is None or self.interval in NATIVE_INTERVALS[self.exchange]

    def source(self) -> PartitionSpec:
        """The partition a derived one is built from (itself when native)."""
        if self.is_native:
            return self
        assert self.interval is not None
        return self.model_copy(update={"interval": RESAMPLED_FROM[self.interval]})
