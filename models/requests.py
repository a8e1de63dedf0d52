"""Request and partition specs: what a run is asked to do, validated before any request."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date

from pydantic import BaseModel, ConfigDict

from models.dates import DateRange
from models.enums import EXCHANGE_DATASETS, Dataset, Exchange, Interval, parse_enum_list
from models.settings import Settings
from models.symbols import parse_symbols

# Coinbase Exchange has no 4h candles; silver resamples them from 1h.
NATIVE_INTERVALS: dict[Exchange, frozenset[Interval]] = {
    Exchange.BINANCE: frozenset(Interval),
    Exchange.OKX: frozenset(Interval),
    Exchange.COINBASE: frozenset(Interval) - {Interval.H4},
}

# Datasets fetched per day by backfills (instruments are a current snapshot, fetched once a run).
DAILY_DATASETS = (Dataset.OHLCV, Dataset.FUNDING, Dataset.OPEN_INTEREST)


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


class RunRequest(BaseModel):
    """A validated request for a date range over exchanges, datasets, intervals and symbols."""

    model_config = ConfigDict(frozen=True)

    days: DateRange
    exchanges: tuple[Exchange, ...]
    datasets: tuple[Dataset, ...]
    intervals: tuple[Interval, ...]
    symbols: tuple[str, ...]
    perp_symbols: tuple[str, ...]
    force: bool = False

    @classmethod
    def build(
        cls,
        *,
        start: str | date,
        end: str | date,
        settings: Settings,
        exchanges: str | Sequence[str] | None = None,
        datasets: str | Sequence[str] | None = None,
        intervals: str | Sequence[str] | None = None,
        symbols: str | Sequence[str] | None = None,
        perp_symbols: str | Sequence[str] | None = None,
        force: bool = False,
    ) -> RunRequest:
        """Validate user input (raising `InputError` naming the culprit) against settings."""
        return cls(
            days=DateRange.parse(start, end),
            exchanges=tuple(
                parse_enum_list(Exchange, exchanges) if exchanges else settings.exchanges
            ),
            datasets=tuple(parse_enum_list(Dataset, datasets) if datasets else list(Dataset)),
            intervals=tuple(
                parse_enum_list(Interval, intervals) if intervals else settings.intervals
            ),
            symbols=tuple(parse_symbols(symbols) if symbols else settings.symbols),
            perp_symbols=tuple(
                parse_symbols(perp_symbols)
                if perp_symbols
                else (parse_symbols(symbols) if symbols else settings.perp_symbols)
            ),
            force=force,
        )

    def symbols_for(self, dataset: Dataset) -> tuple[str, ...]:
        """Spot symbols for candles, perpetual symbols for funding and open interest."""
        return self.symbols if dataset is Dataset.OHLCV else self.perp_symbols

    def partitions(self, *, derived: bool = False) -> Iterator[PartitionSpec]:
        """Every daily partition this request covers, skipping what an exchange lacks.

        With `derived`, also the candle intervals an exchange lacks but silver resamples
        (Coinbase 4h from 1h).
        """
        for day in self.days.days():
            for exchange in self.exchanges:
                offered = EXCHANGE_DATASETS[exchange]
                for dataset in self.datasets:
                    if dataset not in offered or dataset not in DAILY_DATASETS:
                        continue
                    if dataset is Dataset.OHLCV:
                        for interval in self.intervals:
                            if derived or interval in NATIVE_INTERVALS[exchange]:
                                yield PartitionSpec(
                                    exchange=exchange, dataset=dataset, interval=interval, day=day
                                )
                    else:
                        yield PartitionSpec(
                            exchange=exchange, dataset=dataset, interval=None, day=day
                        )
