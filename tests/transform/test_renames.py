"""Following a symbol across a rename in silver (`tasks.transform.renames`), pure frames.

Injected: silver rows of Binance's MATICUSDT up to its delisting and POLUSDT from its opening
(the alias table's dates), plus other exchanges and symbols. Held: one series under the new
name from either name, the exchange's own name in `listed_as`, values unchanged, nothing of
other symbols, the gap between the two listings reported as a rename gap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from models.silver import SILVER_SCHEMAS
from tasks.transform.renames import (
    LISTED_AS,
    aggregate_followed,
    follow_series,
    listed_names,
    rename_gaps,
)

MATIC_END = datetime(2024, 9, 10, 3, tzinfo=UTC)
POL_FROM = datetime(2024, 9, 13, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)


def ohlcv(rows: list[tuple[str, str, datetime, float]]) -> pl.DataFrame:
    """Silver ohlcv rows (exchange, symbol, ts, close), 1h, other fields from the close."""
    frame = pl.DataFrame(
        {
            "exchange": [r[0] for r in rows],
            "symbol": [r[1] for r in rows],
            "interval": ["1h"] * len(rows),
            "ts": [r[2] for r in rows],
            "open": [r[3] for r in rows],
            "high": [r[3] * 1.01 for r in rows],
            "low": [r[3] * 0.99 for r in rows],
            "close": [r[3] for r in rows],
            "volume": [10.0] * len(rows),
            "quote_volume": [r[3] * 10 for r in rows],
            "trades": [5] * len(rows),
        },
        schema=SILVER_SCHEMAS["ohlcv"],
    )
    return frame


def around_switch(hours_before: int, hours_after: int) -> pl.DataFrame:
    old = [
        ("binance", "MATICUSDT", MATIC_END - HOUR * (i + 1), 0.4 + i / 1000)
        for i in range(hours_before)
    ]
    new = [("binance", "POLUSDT", POL_FROM + HOUR * i, 0.38 + i / 1000) for i in range(hours_after)]
    other = [
        ("binance", "BTCUSDT", MATIC_END - HOUR, 57000.0),
        ("okx", "MATICUSDT", MATIC_END - HOUR, 0.41),  # not aliased on OKX
        ("okx", "POLUSDT", POL_FROM, 0.3805),
    ]
    return ohlcv(old + new + other)


def test_listed_names_and_gaps() -> None:
    assert listed_names("POLUSDT", "binance") == ("POLUSDT", "MATICUSDT")
    assert listed_names("maticusdt".upper(), "binance") == ("POLUSDT", "MATICUSDT")
    assert listed_names("MATICUSDT", "okx") == ("MATICUSDT",)
    assert listed_names("SUSDT", "okx") == ("SUSDT", "FTMUSDT")
    assert listed_names("BTCUSDT", "binance") == ("BTCUSDT",)
    assert rename_gaps("POLUSDT", "binance") == [(MATIC_END, POL_FROM)]
    assert rename_gaps("MATICUSDT", "binance") == [(MATIC_END, POL_FROM)]
    okx = rename_gaps("SUSDT", "okx")
    assert okx == [(datetime(2025, 1, 13, 3, tzinfo=UTC), None)]  # S opening not confirmed
    assert rename_gaps("BTCUSDT", "binance") == []


def test_one_series_under_the_new_name_from_either_name() -> None:
    frame = around_switch(5, 4)
    pol = follow_series(frame, "POLUSDT")
    binance = pol.filter(pl.col("exchange") == "binance")
    assert binance.get_column("symbol").unique().to_list() == ["POLUSDT"]
    assert binance.get_column(LISTED_AS).to_list() == ["MATICUSDT"] * 5 + ["POLUSDT"] * 4
    assert binance.get_column("ts").is_sorted()
    # OKX has no verified rename: its POLUSDT alone, under its own name.
    okx = pol.filter(pl.col("exchange") == "okx")
    assert okx.get_column(LISTED_AS).to_list() == ["POLUSDT"]
    # From the old name: Binance followed to POL, OKX's MATICUSDT stays itself.
    matic = follow_series(frame, "MATICUSDT")
    assert matic.filter(pl.col("exchange") == "binance").equals(binance)
    assert matic.filter(pl.col("exchange") == "okx").get_column("symbol").to_list() == ["MATICUSDT"]
    # Nothing else, values unchanged (1:1 migration), the silver columns plus `listed_as`.
    assert "BTCUSDT" not in pol.get_column(LISTED_AS).to_list()
    assert pol.columns == [*SILVER_SCHEMAS["ohlcv"].names(), LISTED_AS]
    source = frame.filter(pl.col("exchange") == "binance", pl.col("symbol") != "BTCUSDT")
    assert sorted(binance.get_column("close").to_list()) == sorted(
        source.get_column("close").to_list()
    )


def test_lazy_equals_eager_and_exchanges_limit() -> None:
    frame = around_switch(3, 3)
    eager = follow_series(frame, "POLUSDT")
    lazy = follow_series(frame.lazy(), "POLUSDT").collect()
    assert lazy.equals(eager)
    only = follow_series(frame, "POLUSDT", exchanges=["okx"])
    assert only.get_column("exchange").unique().to_list() == ["okx"]


def test_old_rows_after_the_delisting_are_left_out_and_overlaps_keep_the_new_listing() -> None:
    frame = ohlcv(
        [
            ("binance", "MATICUSDT", MATIC_END - HOUR, 0.4),
            ("binance", "MATICUSDT", MATIC_END, 0.4),  # served after the delisting: not real
            ("binance", "POLUSDT", MATIC_END - HOUR, 0.5),  # both listings hold this hour
        ]
    )
    pol = follow_series(frame, "POLUSDT")
    assert pol.height == 1
    assert pol.row(0, named=True)[LISTED_AS] == "POLUSDT" and pol.row(0, named=True)["close"] == 0.5


def test_empty_frame() -> None:
    empty = pl.DataFrame(schema=SILVER_SCHEMAS["ohlcv"])
    out = follow_series(empty, "POLUSDT")
    assert out.is_empty() and LISTED_AS in out.columns


def test_aggregate_followed_has_the_aggregate_schema() -> None:
    frame = around_switch(2, 2)
    aggregated, excluded = aggregate_followed(frame, "POLUSDT")
    assert aggregated.schema == SILVER_SCHEMAS["ohlcv_aggregated"]
    assert aggregated.get_column("symbol").unique().to_list() == ["POLUSDT"]
    # The two hours before the delisting come from Binance's MATICUSDT alone.
    before = aggregated.filter(pl.col("ts") < MATIC_END)
    assert before.height == 2 and before.get_column("exchanges").to_list() == [["binance"]] * 2
    at_open = aggregated.filter(pl.col("ts") == POL_FROM)
    assert at_open.get_column("n_exchanges").item() == 2  # Binance and OKX's POLUSDT
    assert excluded.is_empty() or set(excluded.get_column("symbol")) == {"POLUSDT"}


hours = st.lists(st.integers(min_value=-200, max_value=200), unique=True, max_size=40)


@given(old=hours, new=hours, ask_new=st.booleans())
def test_following_keeps_every_real_row_once(old: list[int], new: list[int], ask_new: bool) -> None:
    """Invariant: every old row before the delisting and every new row is in the followed
    series exactly once (a new row wins an hour both hold), named by the new symbol with its
    own name in `listed_as`; an old row at or after the delisting is dropped; asking by either
    name gives the same series."""
    rows = [("binance", "MATICUSDT", MATIC_END + HOUR * h, 1.0 + h) for h in old]
    rows += [("binance", "POLUSDT", POL_FROM + HOUR * h, 2.0 + h) for h in new]
    frame = ohlcv(rows)
    out = follow_series(frame, "POLUSDT" if ask_new else "MATICUSDT")
    assert out.equals(follow_series(frame, "MATICUSDT" if ask_new else "POLUSDT"))
    new_ts = {POL_FROM + HOUR * h for h in new}
    kept_old = {MATIC_END + HOUR * h for h in old if h < 0} - new_ts
    assert out.height == len(new_ts) + len(kept_old)
    assert out.select(pl.col("ts").is_unique().all()).item()
    assert set(out.get_column("symbol")) <= {"POLUSDT"}
    own = dict(
        zip(out.get_column("ts").to_list(), out.get_column(LISTED_AS).to_list(), strict=True)
    )
    assert all(own[t] == "POLUSDT" for t in new_ts)
    assert all(own[t] == "MATICUSDT" for t in kept_old)


def test_a_request_brings_the_former_names_its_range_reaches() -> None:
    from models.selection import Selection
    from models.settings import Settings

    def symbols(start: str, end: str, asked: str) -> tuple[str, ...]:
        selection = Selection.parse(start=start, end=end, symbols=asked)
        return selection.resolve(Settings()).symbols

    assert symbols("2024-09-01", "2024-09-30", "POLUSDT,BTCUSDT") == (
        "POLUSDT",
        "MATICUSDT",
        "BTCUSDT",
    )
    assert symbols("2025-02-01", "2025-02-03", "POLUSDT,SUSDT") == ("POLUSDT", "SUSDT")
    assert symbols("2024-01-01", "2024-01-31", "MATICUSDT") == ("MATICUSDT",)
    assert symbols("2025-01-10", "2025-01-20", "SUSDT,FTMUSDT") == ("SUSDT", "FTMUSDT")
