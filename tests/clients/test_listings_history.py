"""Listings as the exchanges have them (issue 17), against the sandbox's wider universe.

Injected: the sandbox's documented delistings (`sandbox.universe`: Binance BREAK, OKX vanished
and purged, Coinbase delisted), the MATIC -> POL rename, non-trading statuses, 24 h tickers.
Held: listings keep their status, dropped ones resolve by history or id scheme (with a notice),
"unknown instrument" for them is UnavailableAtSource, history keeps delisted listings, the
alias table follows a rename, and the symbol rules resolve from a snapshot.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from clients.base import RetryPolicy
from clients.factory import make_client
from clients.protocol import UnavailableAtSource, UnknownSymbol
from models.aliases import follow_renames, segments
from models.enums import Exchange, Interval, MarketKind
from models.errors import InputError
from models.symbols import parse_rule
from sandbox import universe
from sandbox.server import SandboxServer
from tasks.listings import resolve_rule, resolve_rules
from tasks.transform import normalize_instruments
from tasks.transform.instruments import history_from_snapshots, merge_history

RETRY = RetryPolicy(attempts=3, base_delay=0.02, max_delay=0.2, timeout=15.0)
UTC_ = UTC


def client(server: SandboxServer, exchange: Exchange):  # type: ignore[no-untyped-def]
    return make_client(exchange, sandbox_url=server.url, rate_limits=False, retry=RETRY)


async def test_universe_is_hundreds_with_statuses(sandbox: SandboxServer) -> None:
    """Injected: the wider universe. Held: hundreds per exchange, Binance BREAK/HALT kept,
    a delivering perpetual kept, OKX lists no delisted instrument, Coinbase shows delisted."""
    counts = {}
    for exchange in Exchange:
        async with client(sandbox, exchange) as c:
            frame = await c.instruments(MarketKind.SPOT)
            counts[exchange] = frame.height
            statuses = set(frame.get_column("status").to_list())
            if exchange is Exchange.BINANCE:
                assert {"TRADING", "BREAK", "HALT"} <= statuses
                perp = await c.resolve(universe.DELIVERING_PERP, MarketKind.PERP)
                assert perp.status == "TRADING"
                assert (await c.resolve("MATICUSDT", MarketKind.SPOT)).status == "BREAK"
            if exchange is Exchange.OKX:
                assert universe.VANISHED_SPOT not in frame.get_column("symbol").to_list()
                assert "suspend" in statuses
            if exchange is Exchange.COINBASE:
                assert {"online", "delisted", "offline"} <= statuses
    assert all(n >= 200 for n in counts.values()), counts


async def test_delisted_symbols_last_month_lands_through_the_client(sandbox: SandboxServer):
    """Injected: Binance MATICUSDT BREAK since 2024-09-10 03:00, OKX KAVOR-USDT dropped from
    the listing on 2025-03-14 08:00 but still served. Held: the last trading month's candles
    come back, ending at the delisting."""
    async with client(sandbox, Exchange.BINANCE) as c:
        frame = await c.ohlcv(
            "MATICUSDT",
            Interval.H1,
            datetime(2024, 8, 10, tzinfo=UTC),
            datetime(2024, 9, 20, tzinfo=UTC),
        )
        last = datetime.fromtimestamp(frame.get_column("open_time").max() / 1000, UTC)
        assert frame.height > 700 and last == datetime(2024, 9, 10, 2, tzinfo=UTC)
    async with client(sandbox, Exchange.OKX) as c:
        with pytest.raises(UnknownSymbol):
            await c.resolve(universe.VANISHED_SPOT, MarketKind.SPOT)
        inst = await c.resolve(universe.VANISHED_SPOT, MarketKind.SPOT, unlisted=True)
        assert inst.native_symbol == "KAVOR-USDT"
        frame = await c.ohlcv(
            universe.VANISHED_SPOT,
            Interval.H1,
            datetime(2025, 2, 14, tzinfo=UTC),
            datetime(2025, 3, 20, tzinfo=UTC),
        )
        assert frame.height > 600
        assert int(frame.get_column("ts").cast(pl.Int64).max()) < 1741939200000  # 03-14 08:00


async def test_unknown_instrument_for_a_dropped_listing_is_unavailable(sandbox: SandboxServer):
    """Injected: OKX QUIRO-USDT dropped and answered 51001. Held: UnavailableAtSource naming
    the exchange, symbol and reason; a never-listed symbol stays UnknownSymbol."""
    async with client(sandbox, Exchange.OKX) as c:
        await c.resolve(universe.PURGED_SPOT, MarketKind.SPOT, unlisted=True)
        with pytest.raises(UnavailableAtSource) as caught:
            await c.ohlcv(
                universe.PURGED_SPOT,
                Interval.H1,
                datetime(2025, 3, 1, tzinfo=UTC),
                datetime(2025, 3, 2, tzinfo=UTC),
            )
        assert caught.value.exchange == "okx" and caught.value.symbol == universe.PURGED_SPOT
        assert "delisted" in caught.value.reason
        with pytest.raises(UnknownSymbol):
            await c.resolve("NOPEUSDT", MarketKind.SPOT)


async def test_history_from_history_rows(sandbox: SandboxServer) -> None:
    """Held: a remembered listing resolves to its recorded native id."""
    history = pl.DataFrame(
        {
            "exchange": ["okx"],
            "symbol": ["KAVORUSDT"],
            "native_symbol": ["KAVOR-USDT"],
            "base": ["KAVOR"],
            "quote": ["USDT"],
            "kind": ["spot"],
            "status": ["live"],
        }
    )
    async with client(sandbox, Exchange.OKX) as c:
        c.remember_listings(history)
        inst = await c.resolve("KAVORUSDT", MarketKind.SPOT, unlisted=True)
        assert inst.status == "live" and inst.native_symbol == "KAVOR-USDT"


def snap(symbols: list[str], day: datetime, status: str = "live") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "exchange": ["okx"] * len(symbols),
            "symbol": symbols,
            "native_symbol": [s[:-4] + "-USDT" for s in symbols],
            "base": [s[:-4] for s in symbols],
            "quote": ["USDT"] * len(symbols),
            "kind": ["spot"] * len(symbols),
            "status": [status] * len(symbols),
            "fetched_at": [day] * len(symbols),
        },
        schema_overrides={"fetched_at": pl.Datetime("ms", "UTC")},
    )


def test_history_keeps_delisted_listings_with_dates() -> None:
    """Injected: KAVOR vanishes from the third snapshot; snapshots merged out of order.
    Held: every listing kept, first/last seen right, listed false only for KAVOR."""
    d1, d2, d3 = (datetime(2025, 3, d, tzinfo=UTC) for d in (12, 13, 15))
    snaps = [
        snap(["BTCUSDT"], d3),
        snap(["BTCUSDT", "KAVORUSDT"], d1),
        snap(["BTCUSDT", "KAVORUSDT"], d2),
    ]
    history = history_from_snapshots(snaps)
    rows = {r["symbol"]: r for r in history.iter_rows(named=True)}
    assert rows["KAVORUSDT"]["first_seen"] == d1 and rows["KAVORUSDT"]["last_seen"] == d2
    assert rows["KAVORUSDT"]["listed"] is False and rows["BTCUSDT"]["listed"] is True
    assert rows["BTCUSDT"]["first_seen"] == d1 and rows["BTCUSDT"]["last_seen"] == d3
    again = merge_history(history, snap(["BTCUSDT"], d1))  # an old snapshot changes nothing
    assert again.equals(history)


async def test_history_from_the_sandbox_snapshot(sandbox: SandboxServer) -> None:
    """Held: the real silver path (normalize) feeds the history; one row per listing."""
    async with client(sandbox, Exchange.BINANCE) as c:
        bronze = await c.instruments(MarketKind.SPOT)
    history = merge_history(None, normalize_instruments(bronze))
    assert history.height == bronze.height
    assert history.filter(pl.col("symbol") == "MATICUSDT").get_column("status").item() == "BREAK"


def test_alias_follows_matic_to_pol() -> None:
    """Injected: MATICUSDT rows before the switch, POLUSDT after. Held: one symbol followed,
    the listed name kept, and the backfill pieces split at the real dates."""
    ts = [datetime(2024, 9, 9, tzinfo=UTC), datetime(2024, 9, 14, tzinfo=UTC)]
    frame = pl.DataFrame(
        {"exchange": ["binance", "binance"], "symbol": ["MATICUSDT", "POLUSDT"], "ts": ts}
    )
    followed = follow_renames(frame)
    assert followed.get_column("symbol").to_list() == ["POLUSDT", "POLUSDT"]
    assert followed.get_column("listed_as").to_list() == ["MATICUSDT", "POLUSDT"]
    okx = follow_renames(frame.with_columns(pl.lit("okx").alias("exchange")))
    assert okx.get_column("symbol").to_list() == ["MATICUSDT", "POLUSDT"]  # not verified there
    pieces = segments(
        "POLUSDT", "binance", datetime(2024, 9, 1, tzinfo=UTC), datetime(2024, 10, 1, tzinfo=UTC)
    )
    assert [p[0] for p in pieces] == ["MATICUSDT", "POLUSDT"]
    assert pieces[0][2] == datetime(2024, 9, 10, 3, tzinfo=UTC)
    assert pieces[1][1] == datetime(2024, 9, 13, 10, tzinfo=UTC)


def test_rule_parser() -> None:
    assert str(parse_rule("top:20")) == "top:20" and parse_rule("ALL:usdt").rule == "all"
    assert parse_rule("top:5:USD").quote == "USD"
    for bad in ("top:0", "top:x", "all:", "most:3", "all:XYZQ"):
        with pytest.raises(InputError):
            parse_rule(bad)


async def test_rules_resolve_from_snapshot_and_tickers(sandbox: SandboxServer) -> None:
    """Injected: the universe and its 24 h tickers. Held: all:USDT is every trading USDT pair
    (no BREAK/HALT, no BTC quote); top:5 is the five largest by the ticker's quote volume."""
    snapshots, volumes = {}, {}
    for exchange in (Exchange.BINANCE, Exchange.OKX):
        async with client(sandbox, exchange) as c:
            snapshots[exchange] = await c.instruments(MarketKind.SPOT)
            volumes[exchange] = await c.quote_volumes(MarketKind.SPOT)
    binance = snapshots[Exchange.BINANCE]
    every = resolve_rule(parse_rule("all:USDT"), binance)
    assert "MATICUSDT" not in every and universe.HALTED_SPOT not in every and "BTCUSDT" in every
    assert len(every) >= 250
    top = resolve_rule(parse_rule("top:5"), binance, volumes[Exchange.BINANCE])
    ranked = sorted(every, key=lambda s: -volumes[Exchange.BINANCE][s])[:5]
    assert top == ranked and "BTCUSDT" in top
    merged = resolve_rules(parse_rule("top:3"), snapshots, volumes)
    assert 3 <= len(merged) <= 6
    async with client(sandbox, Exchange.COINBASE) as c:
        cb = await c.quote_volumes(MarketKind.SPOT, ["BTCUSD", universe.DELISTED_PRODUCT])
    assert cb["BTCUSD"] > 0 and universe.DELISTED_PRODUCT not in cb


async def test_binance_firewall_under_hostile_faults(make_sandbox) -> None:  # type: ignore[no-untyped-def]
    """Injected: --faults hostile. Held: some Binance answers are 403 HTML pages, and the
    client still returns the clean data."""
    server = make_sandbox(seed=7, rate_limits="off", faults="hostile")
    import aiohttp

    seen = 0
    async with aiohttp.ClientSession() as session:
        for _ in range(400):
            async with session.get(server.url + "/api/v3/time") as response:
                if response.status == 403:
                    seen += 1
                    assert "html" in response.headers.get("Content-Type", "")
    assert seen >= 1
    retry = RetryPolicy(
        attempts=10, base_delay=0.01, max_delay=0.05, timeout=15.0, firewall_pause=0.05
    )
    async with make_client(
        Exchange.BINANCE, sandbox_url=server.url, rate_limits=False, retry=retry
    ) as c:
        frame = await c.ohlcv(
            "BTCUSDT",
            Interval.H1,
            datetime(2024, 1, 1, tzinfo=UTC),
            datetime(2024, 1, 2, tzinfo=UTC),
        )
    assert frame.height == 24


def test_demo_listing_unchanged() -> None:
    """Held: the demo listings keep their fields (and so their candles)."""
    from sandbox import catalog

    btc = catalog.by_symbol("binance", "spot", "BTCUSDT")
    assert btc is not None and btc.delisted_ms is None and btc.status == ""
    assert [x.base for x in catalog.demo("binance", "spot")] == [
        "BTC",
        "ETH",
        "BNB",
        "XRP",
        "DOGE",
        "SOL",
        "ENA",
    ]
    _ = timedelta
