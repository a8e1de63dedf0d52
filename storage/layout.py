"""Warehouse layout (design.md §6): partition keys and their deterministic paths.

`{layer}/{dataset}/exchange={exchange}/[interval={interval}/]date={YYYY-MM-DD}/part-0.parquet`

One file per (layer, dataset, exchange, interval, day) holds all symbols. Datasets without an
interval omit that level; `ohlcv_aggregated` has no exchange level. The same key always maps to
the same path, so a rewrite replaces and never duplicates.

Partition columns inside files: `exchange` and `interval` are stored in every file (as plain
Arrow `string`, which is what polars, DuckDB and pyarrow infer from the path), so a file read
on its own still says what it holds. `date` is never stored in files; readers derive it from
the path (polars and DuckDB as a date, pyarrow's plain "hive" flavour as a string).
"""

from __future__ import annotations

import re
from datetime import date

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from models.enums import Dataset, Exchange, Interval, Layer
from models.partitions import PartitionSpec

FILE_NAME = "part-0.parquet"
PARTITION_COLUMNS = ("exchange", "interval")
DATE_COLUMN = "date"
AGGREGATED = "ohlcv_aggregated"


class Shape(BaseModel):
    """Which partition levels a dataset has."""

    model_config = ConfigDict(frozen=True)

    exchange: bool
    interval: bool


SHAPES: dict[str, Shape] = {
    Dataset.OHLCV.value: Shape(exchange=True, interval=True),
    AGGREGATED: Shape(exchange=False, interval=True),
    Dataset.FUNDING.value: Shape(exchange=True, interval=False),
    Dataset.OPEN_INTEREST.value: Shape(exchange=True, interval=False),
    Dataset.INSTRUMENTS.value: Shape(exchange=True, interval=False),
}

_PATH_RE = re.compile(
    r"^(?P<layer>[a-z_]+)/(?P<dataset>[a-z_]+)/"
    r"(?:exchange=(?P<exchange>[a-z0-9_]+)/)?"
    r"(?:interval=(?P<interval>[0-9]+[mhd])/)?"
    r"date=(?P<day>\d{4}-\d{2}-\d{2})/" + re.escape(FILE_NAME) + "$"
)


def shape_of(dataset: str) -> Shape:
    try:
        return SHAPES[dataset]
    except KeyError:
        known = ", ".join(SHAPES)
        raise ValueError(f"unknown dataset {dataset!r} (known: {known})") from None


def layer_of(layer: Layer | str) -> Layer:
    try:
        return Layer(str(layer))
    except ValueError:
        known = ", ".join(m.value for m in Layer)
        raise ValueError(f"unknown layer {layer!r} (known: {known})") from None


class PartitionKey(BaseModel):
    """One warehouse file: (layer, dataset, exchange, interval, day)."""

    model_config = ConfigDict(frozen=True)

    layer: Layer
    dataset: str
    exchange: str | None
    interval: str | None
    day: date

    @field_validator("exchange")
    @classmethod
    def _exchange(cls, v: str | None) -> str | None:
        return None if v is None else Exchange(str(v)).value

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: str | None) -> str | None:
        return None if v is None else Interval(str(v)).value

    @model_validator(mode="after")
    def _shape(self) -> PartitionKey:
        shape = shape_of(self.dataset)
        if shape.exchange != (self.exchange is not None):
            need = "needs an exchange" if shape.exchange else "has no exchange level"
            raise ValueError(f"dataset {self.dataset!r} {need} (got exchange={self.exchange!r})")
        if shape.interval != (self.interval is not None):
            need = "needs an interval" if shape.interval else "has no interval level"
            raise ValueError(f"dataset {self.dataset!r} {need} (got interval={self.interval!r})")
        return self

    @classmethod
    def of(cls, spec: PartitionSpec, layer: Layer = Layer.BRONZE) -> PartitionKey:
        """The file of a daily partition in `layer` (bronze, silver or quarantine)."""
        return cls(
            layer=layer,
            dataset=spec.dataset.value,
            exchange=spec.exchange.value,
            interval=spec.interval.value if spec.interval else None,
            day=spec.day,
        )

    @classmethod
    def aggregate(cls, interval: Interval, day: date) -> PartitionKey:
        """The file of one interval's cross-exchange candles for one day (silver)."""
        return cls(
            layer=Layer.SILVER, dataset=AGGREGATED, exchange=None, interval=interval, day=day
        )

    @classmethod
    def instruments(
        cls, exchange: Exchange, day: date, layer: Layer = Layer.BRONZE
    ) -> PartitionKey:
        """The file of an exchange's listings snapshot taken on `day`."""
        return cls(
            layer=layer,
            dataset=Dataset.INSTRUMENTS.value,
            exchange=exchange.value,
            interval=None,
            day=day,
        )

    def __str__(self) -> str:
        parts = [self.layer.value, self.dataset]
        if self.exchange:
            parts.append(f"exchange={self.exchange}")
        if self.interval:
            parts.append(f"interval={self.interval}")
        parts.append(f"date={self.day.isoformat()}")
        return "/".join(parts)

    @property
    def directory(self) -> str:
        """Partition directory relative to the warehouse root."""
        return str(self)

    @property
    def path(self) -> str:
        """File path relative to the warehouse root."""
        return f"{self.directory}/{FILE_NAME}"

    @property
    def partition_values(self) -> dict[str, str]:
        """Partition columns stored inside the file, with their values."""
        out = {}
        if self.exchange:
            out["exchange"] = self.exchange
        if self.interval:
            out["interval"] = self.interval
        return out


def dataset_dir(layer: Layer | str, dataset: str) -> str:
    shape_of(dataset)
    return f"{layer_of(layer).value}/{dataset}"


def parse_path(rel: str) -> PartitionKey | None:
    """The key for a relative file path in the layout, or None if it is not a partition file."""
    match = _PATH_RE.match(rel)
    if not match:
        return None
    try:
        return PartitionKey(
            layer=Layer(match["layer"]),
            dataset=match["dataset"],
            exchange=match["exchange"],
            interval=match["interval"],
            day=date.fromisoformat(match["day"]),
        )
    except ValueError:
        return None
