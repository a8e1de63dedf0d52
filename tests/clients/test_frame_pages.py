"""A symbol's pages typed as one frame (`rows_page`, `pages_frame`) and the window of distinct
keys (`window_filter`): the same rows, order and errors as a frame per page and the query."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from clients.binance import REST
from clients.frames import (
    DecodeError,
    Provenance,
    concat,
    pages_frame,
    rows_frame,
    rows_page,
    window_filter,
)
from models.enums import Dataset, Exchange


def prov(exchange: Exchange) -> Provenance:
    return Provenance(exchange, "BTCUSDT", "BTC-USDT", "1m", 0, 86_400_000, 1_700_000_000_000)


def okx_rows(first: int, count: int) -> list[list[Any]]:
    """OKX candles newest first, opening at minute `first + count - 1` down to `first`."""
    return [
        [str(m * 60_000), "1.5", "2", "1", "1.7", "10", "17", "17", "1"]
        for m in range(first + count - 1, first - 1, -1)
    ]


def query_window(frame: pl.DataFrame, column: str, start: int, end: int) -> pl.DataFrame:
    """The filter + unique + sort query that the distinct-key window must equal."""
    key = pl.col(column).cast(pl.Int64)
    return (
        frame.filter((key >= start) & (key < end))
        .unique(maintain_order=True)
        .sort(key, maintain_order=True)
    )


def test_pages_frame_equals_a_frame_per_page() -> None:
    pages = [okx_rows(600, 300), okx_rows(300, 300), okx_rows(0, 300)]
    p = prov(Exchange.OKX)
    one = pages_frame([rows_page(r, Dataset.OHLCV, Exchange.OKX) for r in pages], Dataset.OHLCV, p)
    each = concat([rows_frame(r, Dataset.OHLCV, p) for r in pages], Exchange.OKX, Dataset.OHLCV)
    assert_frame_equal(one, each)
    klines = [
        [60_000 * i, "1", "2", "0.5", "1.5", "3", 60_000 * i + 59_999, "4", 7, "1", "2", "0"]
        for i in range(3)
    ]
    b = prov(Exchange.BINANCE)
    page = rows_page(klines * 2, Dataset.OHLCV, Exchange.BINANCE, arity=12)
    assert_frame_equal(
        pages_frame([page, page], Dataset.OHLCV, b, constants=REST),
        concat(
            [rows_frame(klines * 2, Dataset.OHLCV, b, arity=12, constants=REST)] * 2,
            Exchange.BINANCE,
            Dataset.OHLCV,
        ),
    )
    empty = pages_frame([], Dataset.OHLCV, p)
    assert empty.height == 0 and empty.schema == rows_frame([], Dataset.OHLCV, p).schema


def test_number_fields_read_as_before() -> None:
    rows: list[list[Any]] = [
        [120, 1, 2.5, "3.5", "x", None],
        [60, 1.0, 2, 3, 4, 5],
        [0, 2**70, 1, 1, 1, 1],
    ]
    c = prov(Exchange.COINBASE)
    page = rows_page(rows, Dataset.OHLCV, Exchange.COINBASE)
    assert pages_frame([page], Dataset.OHLCV, c).equals(rows_frame(rows, Dataset.OHLCV, c))


@pytest.mark.parametrize(
    "row",
    [
        ["1", "o", "h", "l", "c", "v", 1, "q", 1, "b", "q", "0"],  # string for an integer
        [1, 1, "h", "l", "c", "v", 1, "q", 1, "b", "q", "0"],  # number for a string
        [2**63, "o", "h", "l", "c", "v", 1, "q", 1, "b", "q", "0"],  # out of Int64
        [1.0, "o", "h", "l", "c", "v", 1, "q", 1, "b", "q", "0"],  # float for an integer
    ],
)
def test_pages_refuse_wrong_types_as_frames_do(row: list[Any]) -> None:
    with pytest.raises(DecodeError):
        rows_frame([row], Dataset.OHLCV, prov(Exchange.BINANCE), arity=12)
    with pytest.raises(DecodeError):
        rows_page([row], Dataset.OHLCV, Exchange.BINANCE, arity=12)


def test_timestamps_read_numeric_strings() -> None:
    page = rows_page(okx_rows(0, 3), Dataset.OHLCV, Exchange.OKX)
    assert page.timestamps("ts") == [120_000, 60_000, 0]


@pytest.mark.parametrize(
    "pages",
    [
        [okx_rows(600, 300), okx_rows(300, 300), okx_rows(0, 300)],  # newest first
        [okx_rows(0, 300), okx_rows(600, 300), okx_rows(300, 300)],  # out of order
        [okx_rows(300, 300), okx_rows(250, 100)],  # overlapping pages: exact repeats
        [okx_rows(0, 10), [["120000", "9", "9", "9", "9", "9", "9", "9", "1"]]],  # a conflict
    ],
)
@pytest.mark.parametrize(("start", "end"), [(0, 2**62), (100 * 60_000, 450 * 60_000), (5, 5)])
def test_window_equals_the_dedup_query(pages: list[list[Any]], start: int, end: int) -> None:
    p = prov(Exchange.OKX)
    frame = concat([rows_frame(r, Dataset.OHLCV, p) for r in pages], Exchange.OKX, Dataset.OHLCV)
    assert_frame_equal(
        window_filter(frame, "ts", start, end), query_window(frame, "ts", start, end)
    )


def test_window_scales_seconds() -> None:
    rows = [[t, 1.0, 2.0, 1.5, 1.7, 3.0] for t in (180, 120, 60, 0)]
    frame = rows_frame(rows, Dataset.OHLCV, prov(Exchange.COINBASE))
    got = window_filter(frame, "time", 60_000, 180_000, scale=1000)
    assert got.get_column("time").to_list() == [60, 120]
