"""Honest depth and listings wired into the pipeline (issues 16, 17), against the sandbox, by
calling the stages directly (`run_bronze`, `run_silver` with `DIRECT`):

* 2 years of funding and open interest for the default perpetuals fill every day some source
  has data; the rest is *unavailable at the source* with its reason, never complete, and a
  re-run makes 0 requests for it;
* a day before a listing is unavailable (before listing);
* a delisted symbol's last trading month lands (Binance `BREAK`; OKX, which dropped it, from
  the listing history), the days after it unavailable (delisted), an instrument the exchange
  no longer serves at all unavailable, not failed;
* symbol rules `top:3` / `all:QUOTE` resolve once per run from the snapshot and volumes.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from models.dates import day_start
from models.enums import Dataset, Exchange, Layer, MarketKind
from models.partitions import PartitionSpec
from models.selection import Selection
from models.settings import load_settings, parse_universe
from storage import PartitionKey, Warehouse
from storage.planning import describe_states, plan, source_states
from tasks.bronze import SourceFacts, bronze_coverage
from tasks.bronze_stage import run_bronze
from tasks.context import RunContext
from tasks.listings import resolve_rule
from tasks.silver_stage import run_silver
from tasks.transform.silver_batch import validated
from tasks.units import DIRECT
from tests.transform.builders import DAY, at, bronze, ms


def context(warehouse: Path, url: str) -> RunContext:
    return RunContext(load_settings(warehouse=str(warehouse), sandbox_url=url))


def run(warehouse: Path, url: str, selection: Selection) -> tuple[Any, Any, RunContext]:
    async def go() -> tuple[Any, Any, RunContext]:
        ctx = context(warehouse, url)
        request = selection.resolve(ctx.settings)
        bronze = await run_bronze(request, ctx, DIRECT)
        silver = await run_silver(bronze.request or request, context(warehouse, url), DIRECT)
        return bronze, silver, ctx

    return asyncio.run(go())


def requests(ctx: RunContext) -> int:
    return sum(
        row["requests"] + row.get("archive_requests", 0) for row in ctx.client_stats().values()
    )


def test_two_years_of_funding_and_open_interest_complete_or_unavailable(
    tmp_path: Path, sandbox_url: str
) -> None:
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    start = yesterday - timedelta(days=729)
    selection = Selection(
        start=start,
        end=yesterday,
        exchanges=[Exchange.BINANCE, Exchange.OKX],
        datasets=[Dataset.FUNDING, Dataset.OPEN_INTEREST],
    )
    asked = datetime.now(UTC)
    bronze, silver, _ = run(tmp_path, sandbox_url, selection)
    assert bronze.failures == [] and silver.failures == []
    warehouse = Warehouse(str(tmp_path))
    oldest_entry_days = {
        (moment.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1439)).date()
        for moment in (asked, datetime.now(UTC))
    }

    for layer in (Layer.BRONZE, Layer.SILVER):
        states = source_states(warehouse, layer=layer, start=start, end=yesterday)
        print("\n".join(describe_states(states)))
        rows = {(r["exchange"], r["dataset"], r["symbol"]): r for r in states.to_dicts()}
        assert {k[2] for k in rows} == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
        assert len(rows) == 2 * 2 * 3
        for row in rows.values():
            assert row["missing_days"] == 0, row  # every day complete or unavailable
            assert row["complete_days"] + row["unavailable_days"] == 730
        for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
            # Binance: funding from the archive's monthly files, every day
            assert rows[("binance", "funding", symbol)]["complete_days"] == 730
            oi = rows[("binance", "open_interest", symbol)]
            assert oi["complete_days"] >= 700  # daily metrics files, but the few missing
            assert oi["unavailable_days"] >= 1  # 2024-05-20 has no file for any market
            assert "REST serves the last 30 days; no archive file" in oi["unavailable"]
            funding = rows[("okx", "funding", symbol)]
            assert 88 <= funding["complete_days"] <= 93
            assert "beyond the source's depth (about 3 months)" in funding["unavailable"]
            assert funding["first_day"] >= yesterday - timedelta(days=93)
            okx_oi = rows[("okx", "open_interest", symbol)]
            assert 59 <= okx_oi["complete_days"] <= 62
            assert "beyond the source's depth (1,440 h)" in okx_oi["unavailable"]
            # OKX keeps 1,440 hourly entries up to the current hour: the first day with rows is
            # that of the oldest entry, as of when the run asked (an hour may turn meanwhile)
            assert okx_oi["first_day"] in oldest_entry_days, (okx_oi, oldest_entry_days)

    # nothing is complete with no rows: each complete record holds rows
    records = warehouse.coverage.query(layer=Layer.BRONZE)
    assert records.filter(pl.col("complete") & (pl.col("rows_present") == 0)).is_empty()
    assert records.filter(pl.col("unavailable").is_not_null() & pl.col("complete")).is_empty()

    # a re-run plans nothing and makes no request
    request = selection.resolve(load_settings())
    assert list(plan(warehouse, Layer.BRONZE, request)) == []
    assert list(plan(warehouse, Layer.SILVER, request)) == []
    again, _, ctx = run(tmp_path, sandbox_url, selection)
    assert again.failures == [] and requests(ctx) == 0


def test_days_before_the_listing_are_unavailable(tmp_path: Path, sandbox_url: str) -> None:
    # ENAUSDT perpetuals open 2024-04-02 08:00 UTC on Binance and OKX (sandbox.catalog)
    selection = Selection(
        start=date(2024, 3, 31),
        end=date(2024, 4, 3),
        exchanges=[Exchange.BINANCE, Exchange.OKX],
        symbols=["ENAUSDT"],
        datasets=[Dataset.OHLCV],
        intervals=["1h"],
    )
    bronze, _, _ = run(tmp_path, sandbox_url, selection)
    assert bronze.failures == []
    records = Warehouse(str(tmp_path)).coverage.query(layer=Layer.BRONZE, symbol="ENAUSDT")
    by_day = {(r["exchange"], r["day"]): r for r in records.to_dicts()}
    for exchange in ("binance", "okx"):
        for day in (date(2024, 3, 31), date(2024, 4, 1)):
            record = by_day[(exchange, day)]
            assert not record["complete"]
            assert record["unavailable"] is not None
        assert by_day[(exchange, date(2024, 4, 3))]["complete"]
    # OKX states the listing time (listTime): the reason says so
    okx = by_day[("okx", date(2024, 3, 31))]["unavailable"]
    assert okx == "before listing (listed 2024-04-02 08:00 UTC)"


def _old_okx_snapshot(warehouse: Warehouse, symbols: list[str]) -> None:
    """An OKX snapshot of 2025-01-02 that still listed `symbols` (since dropped), written as
    the pipeline would have stored it then (today's rows, plus theirs)."""
    newest = max(
        k.day for k in warehouse.list_keys(Layer.BRONZE, "instruments") if k.exchange == "okx"
    )
    today = warehouse.read(PartitionKey.instruments(Exchange.OKX, newest))
    assert today is not None
    then = datetime(2025, 1, 2, 0, 5, tzinfo=UTC)
    template = today.filter(pl.col("native_symbol") == "BTC-USDT")
    rows = [
        template.with_columns(
            pl.lit(symbol).alias("symbol"),
            pl.lit(symbol.removesuffix("USDT") + "-USDT").alias("native_symbol"),
            pl.lit(symbol.removesuffix("USDT")).alias("base"),
        )
        for symbol in symbols
    ]
    old = pl.concat([today, *rows]).with_columns(
        pl.lit(then).cast(today.schema["fetched_at"]).alias("fetched_at")
    )
    warehouse.write(PartitionKey.instruments(Exchange.OKX, then.date()), old, closed=False)


def test_a_delisted_symbols_last_month_lands(tmp_path: Path, sandbox_url: str) -> None:
    # KAVORUSDT: Binance BREAK and OKX dropped it, both at 2025-03-14 08:00 UTC; QUIROUSDT:
    # OKX dropped it then and no longer serves it at all (sandbox.universe)
    warehouse = Warehouse(str(tmp_path))
    asyncio.run(_snapshot(tmp_path, sandbox_url))
    _old_okx_snapshot(warehouse, ["KAVORUSDT", "QUIROUSDT"])
    selection = Selection(
        start=date(2025, 2, 14),
        end=date(2025, 3, 16),
        exchanges=[Exchange.BINANCE, Exchange.OKX],
        symbols=["KAVORUSDT", "QUIROUSDT"],
        datasets=[Dataset.OHLCV, Dataset.INSTRUMENTS],
        intervals=["1h"],
    )
    bronze, silver, _ = run(tmp_path, sandbox_url, selection)
    assert bronze.failures == [] and silver.failures == []

    candles = warehouse.scan(Layer.SILVER, "ohlcv").collect()
    kavor = candles.filter(pl.col("symbol") == "KAVORUSDT")
    for exchange in ("binance", "okx"):
        mine = kavor.filter(pl.col("exchange") == exchange)
        assert mine.filter(pl.col("ts").dt.date() == date(2025, 3, 13)).height == 24
        assert mine.filter(pl.col("ts").dt.date() == date(2025, 3, 14)).height == 8
        assert mine.filter(pl.col("ts").dt.date() < date(2025, 3, 14)).height == 28 * 24
        last = mine.get_column("ts").max()
        assert isinstance(last, datetime) and last < datetime(2025, 3, 14, 8, tzinfo=UTC)

    states = {
        (r["exchange"], r["symbol"]): r
        for r in source_states(
            warehouse, dataset="ohlcv", start=selection.start, end=selection.end
        ).to_dicts()
    }
    assert states[("binance", "KAVORUSDT")]["missing_days"] == 0
    assert states[("binance", "KAVORUSDT")]["unavailable_days"] == 2
    assert "delisted (status BREAK on binance)" in states[("binance", "KAVORUSDT")]["unavailable"]
    assert "delisted (no longer in okx's listing)" in states[("okx", "KAVORUSDT")]["unavailable"]
    quiro = states[("okx", "QUIROUSDT")]
    assert quiro["complete_days"] == 0 and quiro["missing_days"] == 0
    assert quiro["unavailable"].startswith("delisted: ")
    assert states[("binance", "QUIROUSDT")]["complete_days"] == 31  # still trading there

    # silver instruments keep every listing ever seen, the dropped ones not listed
    history = warehouse.scan(Layer.SILVER, "instruments").collect()
    okx = history.filter(pl.col("exchange") == "okx", pl.col("kind") == "spot")
    dropped = okx.filter(pl.col("symbol").is_in(["KAVORUSDT", "QUIROUSDT"]))
    assert dropped.height == 2 and not dropped.get_column("listed").any()
    assert okx.filter(pl.col("symbol") == "BTCUSDT").get_column("listed").to_list() == [True]
    assert set(okx.get_column("first_seen").dt.date().unique()) >= {date(2025, 1, 2)}
    assert history.select(pl.len().over("exchange", "symbol", "kind").max()).item() == 1


async def _snapshot(warehouse: Path, url: str) -> None:
    from tasks.bronze import fetch_all_instruments

    ctx = context(warehouse, url)
    try:
        await fetch_all_instruments([Exchange.OKX], ctx=ctx)
    finally:
        await ctx.aclose()


def test_symbol_rules_parse_in_selection_and_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_universe("btcusdt,TOP:3") == ["BTCUSDT", "top:3"]
    assert parse_universe(["all:usdc"]) == ["all:USDC"]
    selection = Selection.parse(start="2024-03-01", end="2024-03-01", symbols="top:5:USDC")
    assert selection.symbols == ["top:5:USDC"]
    monkeypatch.setenv("CRYPTO_PIPELINE_SYMBOLS", "top:3,ETHUSDT")
    assert load_settings().symbols == ["ETHUSDT", "top:3"]


def test_top_three_resolves_from_the_sandbox_volumes(tmp_path: Path, sandbox_url: str) -> None:
    day = datetime.now(UTC).date() - timedelta(days=2)
    selection = Selection(
        start=day,
        end=day,
        exchanges=[Exchange.BINANCE],
        symbols=["top:3"],
        datasets=[Dataset.OHLCV],
        intervals=["1d"],
    )
    bronze, silver, _ = run(tmp_path, sandbox_url, selection)
    assert bronze.failures == [] and silver.failures == []

    async def expected() -> list[str]:
        ctx = context(tmp_path, sandbox_url)
        try:
            client = ctx.client(Exchange.BINANCE)
            volumes = await client.quote_volumes(MarketKind.SPOT)  # type: ignore[attr-defined]
            snapshot = await client.instruments(MarketKind.SPOT)
        finally:
            await ctx.aclose()
        from models.symbols import parse_rule

        return resolve_rule(parse_rule("top:3"), snapshot, volumes)

    top = asyncio.run(expected())
    assert len(top) == 3
    assert bronze.universe["top:3"] == top
    assert bronze.request.symbols == tuple(top)
    candles = Warehouse(str(tmp_path)).scan(Layer.SILVER, "ohlcv").collect()
    assert set(candles.get_column("symbol")) == set(top)


def test_a_day_beginning_beyond_the_depth_with_only_a_quarantined_row_is_unavailable() -> None:
    # OKX's oldest funding event served: its interval needs the event before it, which lies
    # beyond the endpoint's depth, so the row is quarantined and the day holds nothing valid.
    spec = PartitionSpec(exchange=Exchange.OKX, dataset=Dataset.FUNDING, interval=None, day=DAY)
    event = {"fundingTime": str(ms(at(DAY, 16 * 60))), "fundingRate": "0.0001"}
    checked = validated(
        "funding",
        bronze(Exchange.OKX, Dataset.FUNDING, [event]),
        exchange="okx",
        interval=None,
        day=DAY,
    )
    assert checked.good.is_empty() and checked.quarantine.height == 1
    depth = timedelta(days=92)
    facts = SourceFacts(depth=depth, depth_note="about 3 months")

    def record(now: datetime) -> dict[str, Any]:
        return bronze_coverage(
            spec, checked, ["BTCUSDT"], closed=True, now=now, settle_days=3, facts=facts
        ).row(0, named=True)

    edge = record(day_start(DAY) + depth + timedelta(hours=12))  # the depth begins in the day
    assert not edge["complete"]
    assert edge["unavailable"] == "beyond the source's depth (about 3 months)"
    within = record(day_start(DAY) + timedelta(days=10))  # a settled source gap, as before
    assert within["complete"] and within["unavailable"] is None
    assert "quarantined" in within["gap_reason"]
