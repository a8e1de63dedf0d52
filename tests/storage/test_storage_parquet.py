"""What a warehouse file stores of a frame: the Arrow table and the dictionary decision."""

from __future__ import annotations

from datetime import date

import polars as pl
import pyarrow as pa
import pytest

from models.enums import Dataset, Exchange, Layer
from storage import PartitionKey
from storage.parquet import (
    arrow_table,
    dictionary_columns,
    frame_dictionary_columns,
    partition_frame,
    plain_strings,
)
from tests.storage import frames

DAY = date(2024, 3, 5)


def _shapes() -> dict[str, pl.DataFrame]:
    candles = frames.ohlcv("binance", "1m", DAY)
    return {
        "bronze binance": frames.bronze(Exchange.BINANCE, Dataset.OHLCV, "1m", DAY),
        "bronze okx": frames.bronze(Exchange.OKX, Dataset.OHLCV, "1m", DAY),
        "silver": candles,
        "nulls": candles.with_columns(pl.lit(None, pl.String).alias("note")),
        "categorical": candles.with_columns(pl.col("symbol").cast(pl.Categorical)),
        "nested": candles.with_columns(pl.concat_list("open", "close").alias("pair")),
        "binary": candles.with_columns(pl.col("symbol").cast(pl.Binary).alias("raw")),
        "empty": candles.head(0),
    }


@pytest.mark.parametrize("name", list(_shapes()))
def test_arrow_table_is_the_frame_with_plain_strings(name: str) -> None:
    frame = _shapes()[name]
    table = arrow_table(frame)
    old = frame.to_arrow()
    expected = old.cast(pa.schema([f.with_type(plain_strings(f.type)) for f in old.schema]))
    assert table.schema.equals(expected.schema, check_metadata=True)
    assert table.equals(expected)
    assert frame_dictionary_columns(frame) == dictionary_columns(table)


def test_partition_frame_fills_and_checks_the_key() -> None:
    candles = frames.ohlcv("binance", "1m", DAY)
    key = PartitionKey(
        layer=Layer.SILVER, dataset="ohlcv", exchange="binance", interval="1m", day=DAY
    )
    filled = partition_frame(key, candles.drop("exchange"))
    assert filled.get_column("exchange").unique().to_list() == ["binance"]
    with pytest.raises(ValueError, match="holds"):
        partition_frame(key, candles.with_columns(pl.lit("okx").alias("exchange")))
    later = candles.with_columns(pl.col("ts").dt.offset_by("1d"))
    with pytest.raises(ValueError, match="other days"):
        partition_frame(key, pl.concat([candles, later.tail(1)]))
    nulls = candles.with_columns(pl.lit(None).cast(candles.schema["ts"]).alias("ts"))
    assert partition_frame(key, nulls).height == candles.height
