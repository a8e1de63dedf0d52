"""What a run is asked to do: the user's selection, and the request it resolves to.

`Selection` is what users give (CLI arguments, deployment parameters, the Prefect UI form):
validated once, when it is built. `RunRequest` is that selection resolved against the
settings' defaults, built once per run and passed down to every unit of work.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.aliases import former_names
from models.dates import DateRange, check_range, parse_date
from models.enums import EXCHANGE_DATASETS, Dataset, Exchange, Interval, parse_enum_list
from models.errors import InputError
from models.partitions import DAILY_DATASETS, NATIVE_INTERVALS, RESAMPLED_FROM, PartitionSpec
from models.settings import Settings, parse_universe
from models.symbols import is_rule, parse_rule


def _input(parse: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a parser raising `InputError` inside a pydantic validator (as a ValueError)."""
    try:
        return parse(value, *args, **kwargs)
    except InputError as exc:
        raise ValueError(str(exc)) from None


class Selection(BaseModel):
    """An inclusive range of UTC days and, optionally, which exchanges, symbols, intervals and
    datasets (empty: the configured defaults)."""

    model_config = ConfigDict(frozen=True)

    start: date = Field(title="Start", description="First UTC day, YYYY-MM-DD")
    end: date = Field(title="End", description="Last UTC day (inclusive), YYYY-MM-DD")
    exchanges: list[Exchange] | None = Field(
        default=None, title="Exchanges", description="Default: CRYPTO_PIPELINE_EXCHANGES"
    )
    symbols: list[str] | None = Field(
        default=None,
        title="Symbols",
        description="Unified symbols such as BTCUSDT, or a rule: top:N[:QUOTE] (by 24h quote "
        "volume), all:QUOTE; default: CRYPTO_PIPELINE_SYMBOLS",
    )
    perp_symbols: list[str] | None = Field(
        default=None,
        title="Perpetual symbols",
        description="For funding and open interest; default: the symbols given, else "
        "CRYPTO_PIPELINE_PERP_SYMBOLS",
    )
    intervals: list[Interval] | None = Field(
        default=None, title="Intervals", description="Default: CRYPTO_PIPELINE_INTERVALS"
    )
    datasets: list[Dataset] | None = Field(
        default=None, title="Datasets", description="Default: every dataset"
    )
    force: bool = Field(
        default=False, title="Force", description="Re-fetch days already recorded complete"
    )

    @field_validator("start", "end", mode="before")
    @classmethod
    def _day(cls, value: Any, info: Any) -> date:
        return _input(parse_date, value, name=f"{info.field_name} date")

    @field_validator("symbols", "perp_symbols", mode="before")
    @classmethod
    def _symbols(cls, value: Any) -> list[str] | None:
        return None if value is None else _input(parse_universe, value)

    @field_validator("exchanges", mode="before")
    @classmethod
    def _exchanges(cls, value: Any) -> list[Exchange] | None:
        return None if value is None else _input(parse_enum_list, Exchange, value)

    @field_validator("intervals", mode="before")
    @classmethod
    def _interval_list(cls, value: Any) -> list[Interval] | None:
        return None if value is None else _input(parse_enum_list, Interval, value)

    @field_validator("datasets", mode="before")
    @classmethod
    def _datasets(cls, value: Any) -> list[Dataset] | None:
        return None if value is None else _input(parse_enum_list, Dataset, value)

    @model_validator(mode="after")
    def _range(self) -> Selection:
        check_range(self.start, self.end)
        return self

    @classmethod
    def parse(cls, **values: Any) -> Selection:
        """Build from user input (empty values are defaults), raising `InputError` that names
        the culprit."""
        given = {k: v for k, v in values.items() if v not in (None, "", [])}
        try:
            return cls(**given)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InputError(str(first["msg"]).removeprefix("Value error, ")) from None

    def days(self) -> DateRange:
        return DateRange(start=self.start, end=self.end)

    def resolve(self, settings: Settings) -> RunRequest:
        """The request this selection makes, the settings' defaults filled in."""
        days = self.days()
        exchanges = tuple(self.exchanges or settings.exchanges)
        return RunRequest(
            days=days,
            exchanges=exchanges,
            datasets=tuple(self.datasets or Dataset),
            intervals=tuple(self.intervals or settings.intervals),
            symbols=_with_former_names(tuple(self.symbols or settings.symbols), exchanges, days),
            perp_symbols=tuple(self.perp_symbols or self.symbols or settings.perp_symbols),
            force=self.force,
        )


def _with_former_names(
    symbols: tuple[str, ...], exchanges: tuple[Exchange, ...], days: DateRange
) -> tuple[str, ...]:
    """Spot symbols plus the names they were listed under before a rename within the range
    (rules such as `top:3` are left for `with_universe`, which applies this again)."""
    start = datetime.combine(days.start, time(), UTC)
    end = datetime.combine(days.end + timedelta(days=1), time(), UTC)
    listed = tuple(s for s in symbols if not is_rule(s))
    followed = former_names(listed, tuple(str(e) for e in exchanges), start, end)
    return (*followed, *(s for s in symbols if is_rule(s)))


class RunRequest(BaseModel):
    """A selection resolved against settings: a date range over exchanges, datasets,
    intervals and symbols."""

    model_config = ConfigDict(frozen=True)

    days: DateRange
    exchanges: tuple[Exchange, ...]
    datasets: tuple[Dataset, ...]
    intervals: tuple[Interval, ...]
    symbols: tuple[str, ...]
    perp_symbols: tuple[str, ...]
    force: bool = False

    @property
    def rules(self) -> tuple[str, ...]:
        """The symbol rules (`top:3`, `all:USDT`) among the symbols, still to resolve."""
        return tuple(s for s in (*self.symbols, *self.perp_symbols) if is_rule(s))

    def with_universe(
        self, spot: dict[str, list[str]], perp: dict[str, list[str]] | None = None
    ) -> RunRequest:
        """This request with each rule replaced by the symbols it resolved to (`spot`: rule ->
        spot symbols; `perp`: rule -> perpetuals, default `spot`), in order without repeats."""

        def expand(symbols: tuple[str, ...], resolved: dict[str, list[str]]) -> tuple[str, ...]:
            out: list[str] = []
            for item in symbols:
                names = resolved[str(parse_rule(item))] if is_rule(item) else [item]
                out += [n for n in names if n not in out]
            return tuple(out)

        return self.model_copy(
            update={
                "symbols": _with_former_names(
                    expand(self.symbols, spot), self.exchanges, self.days
                ),
                "perp_symbols": expand(self.perp_symbols, spot if perp is None else perp),
            }
        )

    def symbols_for(self, dataset: Dataset) -> tuple[str, ...]:
        """Spot symbols for candles, perpetual symbols for funding and open interest."""
        return self.symbols if dataset is Dataset.OHLCV else self.perp_symbols

    def symbol_map(self) -> dict[Dataset, list[str]]:
        """The symbols of every requested dataset."""
        return {d: list(self.symbols_for(d)) for d in self.datasets}

    def partitions(self, *, derived: bool = False) -> Iterator[PartitionSpec]:
        """Every daily partition this request covers, skipping what an exchange lacks.

        Without `derived` (what to fetch): the intervals an exchange serves, and for one it
        lacks, its source (Coinbase 1h for 4h). With `derived` (what to build): both.
        """
        for day in self.days.days():
            for exchange in self.exchanges:
                offered = EXCHANGE_DATASETS[exchange]
                for dataset in self.datasets:
                    if dataset not in offered or dataset not in DAILY_DATASETS:
                        continue
                    if dataset is not Dataset.OHLCV:
                        yield PartitionSpec(
                            exchange=exchange, dataset=dataset, interval=None, day=day
                        )
                        continue
                    for interval in self.intervals_of(exchange, derived=derived):
                        yield PartitionSpec(
                            exchange=exchange, dataset=dataset, interval=interval, day=day
                        )

    def intervals_of(self, exchange: Exchange, *, derived: bool) -> list[Interval]:
        """Requested intervals as fetched (one the exchange lacks by its source) or as built
        (one the exchange lacks with its source, which it is resampled from)."""
        out: list[Interval] = []
        for interval in self.intervals:
            if interval in NATIVE_INTERVALS[exchange]:
                chosen = [interval]
            else:
                source = RESAMPLED_FROM[interval]
                chosen = [source, interval] if derived else [source]
            out += [i for i in chosen if i not in out]
        return out
