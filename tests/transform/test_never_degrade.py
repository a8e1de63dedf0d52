"""Never degrade and complete-means-complete as pure rules (`tasks.transform.degrade`,
`tasks.transform.coverage.judge_complete`)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl

from models.enums import Interval
from models.silver import SILVER_KEYS
from tasks.transform.coverage import build_coverage, judge_complete
from tasks.transform.degrade import keep_stored, refused_symbols
from tasks.transform.validate import validate
from tests.storage.frames import ohlcv

DAY = date(2024, 3, 4)
KEYS = SILVER_KEYS["ohlcv"]


def test_a_valid_row_lost_or_turned_invalid_is_refused_per_symbol() -> None:
    """Injected: a new version where BTCUSDT keeps its count but one candle has high<low,
    ETHUSDT lacks one candle and SOLUSDT is revised in value only. Held: BTCUSDT and ETHUSDT
    are refused with why (invalid with its reason; absent), SOLUSDT is accepted, and
    `keep_stored` puts back the stored rows of the refused symbols only."""
    stored = ohlcv("binance", "1h", DAY, ["BTCUSDT", "ETHUSDT", "SOLUSDT"])
    bad_ts = stored.filter(pl.col("symbol") == "BTCUSDT").get_column("ts")[5]
    is_bad = (pl.col("symbol") == "BTCUSDT") & (pl.col("ts") == bad_ts)
    offered = stored.with_columns(
        pl.when(is_bad).then(pl.col("low") - 1).otherwise(pl.col("high")).alias("high"),
        pl.when(pl.col("symbol") == "SOLUSDT")
        .then(pl.col("volume") * 2)
        .otherwise(pl.col("volume"))
        .alias("volume"),
    ).filter(~((pl.col("symbol") == "ETHUSDT") & (pl.col("ts") == bad_ts)))
    good, quarantine = validate(offered, "ohlcv", interval=Interval.H1, day=DAY)
    assert good.height == 70 and quarantine.height == 1

    refused = refused_symbols(stored, good, KEYS, offered_quarantine=quarantine)
    assert sorted(refused) == ["BTCUSDT", "ETHUSDT"]
    assert "1 now invalid (" in refused["BTCUSDT"] and "high<low" in refused["BTCUSDT"]
    assert "1 absent" in refused["ETHUSDT"] and "stored rows kept" in refused["ETHUSDT"]
    assert refused_symbols(stored, stored, KEYS) == {}

    merged = keep_stored(stored, good, list(refused), KEYS)
    assert merged.filter(pl.col("symbol") != "SOLUSDT").equals(
        stored.filter(pl.col("symbol") != "SOLUSDT")
    )
    assert merged.filter(pl.col("symbol") == "SOLUSDT").equals(
        good.filter(pl.col("symbol") == "SOLUSDT")
    )


def judged(
    good: pl.DataFrame, quarantine: pl.DataFrame, *, now: datetime, settle_days: int = 3
) -> dict[str, tuple[bool, str | None]]:
    coverage = build_coverage(
        "ohlcv",
        good,
        exchange="binance",
        grid=Interval.H1,
        day=DAY,
        symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"],
        quarantined=quarantine,
        closed=True,
        complete=False,
        now=now,
    )
    out = judge_complete(
        coverage, good, grid=Interval.H1, day=DAY, closed=True, now=now, settle_days=settle_days
    )
    return {s: (c, r) for s, c, r in out.select("symbol", "complete", "gap_reason").iter_rows()}


def test_complete_only_when_nothing_is_missing_or_the_source_confirms_the_gap() -> None:
    """Injected: BTCUSDT whole; ETHUSDT lacking a mid-day candle (the exchange served later
    ones); SOLUSDT lacking its last candle; BNBUSDT with one quarantined candle. Held: within
    the settle period BTCUSDT and ETHUSDT are complete (ETHUSDT as a source gap), SOLUSDT and
    BNBUSDT incomplete with the reason; after it, all four are complete, the last two as
    source gaps naming what is missing."""
    full = ohlcv("binance", "1h", DAY, ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"])
    ts = full.get_column("ts").unique().sort()
    good = full.filter(
        ~((pl.col("symbol") == "ETHUSDT") & (pl.col("ts") == ts[7]))
        & ~((pl.col("symbol") == "SOLUSDT") & (pl.col("ts") == ts[-1]))
        & ~((pl.col("symbol") == "BNBUSDT") & (pl.col("ts") == ts[3]))
    )
    quarantine = full.filter((pl.col("symbol") == "BNBUSDT") & (pl.col("ts") == ts[3]))
    soon = datetime(2024, 3, 5, 0, 5, tzinfo=UTC)
    got = judged(good, quarantine, now=soon)
    assert got["BTCUSDT"] == (True, None)
    assert got["ETHUSDT"] == (True, "source gap: the exchange served later rows of the day")
    assert got["SOLUSDT"][0] is False and "rows missing at the end of the day" in str(
        got["SOLUSDT"][1]
    )
    assert "fetched again until 2024-03-08" in str(got["SOLUSDT"][1])
    assert got["BNBUSDT"][0] is False and "1 rows quarantined" in str(got["BNBUSDT"][1])

    later = soon + timedelta(days=3)
    settled = judged(good, quarantine, now=later)
    assert all(c for c, _ in settled.values())
    assert str(settled["SOLUSDT"][1]).startswith("source gap: rows missing at the end of the day")
    assert str(settled["BNBUSDT"][1]).startswith("source gap: 1 rows quarantined")
