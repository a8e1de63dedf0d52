"""Every client endpoint against the sandbox exchange (127.0.0.1, started by the fixtures)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import polars as pl
import pytest

from clients.base import BaseClient, RetryPolicy
from clients.factory import make_client, open_clients
from clients.protocol import BadRequest, UnknownSymbol
from models.bronze import bronze_schema
from models.enums import Dataset, Exchange, Interval, MarketKind
from sandbox.server import SandboxServer

LEAP_DAY = datetime(2024, 2, 29, tzinfo=UTC)
DAY = timedelta(days=1)
TS_COLUMN = {Exchange.BINANCE: "open_time", Exchange.OKX: "ts", Exchange.COINBASE: "time"}

# Fast retries for tests; Retry-After from the sandbox is still honoured.
TEST_RETRY = RetryPolicy(attempts=8, base_delay=0.02, max_delay=0.5, timeout=15.0)


def client(server: SandboxServer, exchange: Exchange) -> BaseClient:
    return make_client(exchange, sandbox_url=server.url, rate_limits=False, retry=TEST_RETRY)


def open_ms(frame: pl.DataFrame, exchange: Exchange) -> list[int]:
    """Candle open times in epoch ms, whatever the exchange's own unit and type."""
    column = pl.col(TS_COLUMN[exchange]).cast(pl.Int64)
    if exchange is Exchange.COINBASE:
        column = column * 1000
    return frame.select(column).to_series().to_list()


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def data_only(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop("fetched_at")


# -- ohlcv ---------------------------------------------------------------------------------


@pytest.mark.parametrize("exchange", list(Exchange))
async def test_leap_day_of_minutes_across_pages(sandbox: SandboxServer, exchange: Exchange):
    async with client(sandbox, exchange) as c:
        frame = await c.ohlcv("BTCUSDT", Interval.M1, LEAP_DAY, LEAP_DAY + DAY)
        pages = c.stats.by_endpoint
    assert frame.schema == bronze_schema(exchange, Dataset.OHLCV)
    times = open_ms(frame, exchange)
    assert times == sorted(set(times))
    assert all(ms(LEAP_DAY) <= t < ms(LEAP_DAY + DAY) and t % 60_000 == 0 for t in times)
    if exchange is Exchange.BINANCE:
        assert len(times) == 1440 - 30  # the documented 03:00-03:30 maintenance gap
        gap = range(ms(LEAP_DAY + timedelta(hours=3)), ms(LEAP_DAY + timedelta(hours=3.5)))
        assert not any(t in gap for t in times)
        assert pages["/api/v3/klines"] == 2
    elif exchange is Exchange.OKX:
        assert len(times) == 1440
        assert pages["/api/v5/market/history-candles"] == 5
    else:
        assert len(times) > 1400  # Coinbase omits minutes without trades
        assert pages["/products/BTC-USDT/candles"] == 5
    assert frame["window_start"][0] == LEAP_DAY
    assert set(frame["symbol"]) == {"BTCUSDT"}


@pytest.mark.parametrize("exchange", list(Exchange))
async def test_pieces_and_whole_agree_exactly_once(sandbox: SandboxServer, exchange):
    """Two days fetched at once equal the same range fetched in odd-sized pieces."""
    start = datetime(2024, 5, 30, 22, 30, tzinfo=UTC)
    end = start + timedelta(days=2, minutes=7)
    async with client(sandbox, exchange) as c:
        whole = await c.ohlcv("ETHUSDT", Interval.M1, start, end)
        cuts = [start + timedelta(minutes=m) for m in (0, 1, 301, 1_777, 2_887)] + [end]
        pieces = [await c.ohlcv("ETHUSDT", Interval.M1, a, b) for a, b in pairwise(cuts)]
    joined = pl.concat(pieces).drop("window_start", "window_end", "fetched_at")
    assert whole.drop("window_start", "window_end", "fetched_at").equals(joined)
    assert whole.height > 2 * 1440 - 30


@pytest.mark.parametrize("exchange", list(Exchange))
async def test_coarse_intervals_match_fine_ones(sandbox: SandboxServer, exchange: Exchange):
    start, end = datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 3, tzinfo=UTC)
    async with client(sandbox, exchange) as c:
        minutes = open_ms(await c.ohlcv("SOLUSDT", Interval.M1, start, end), exchange)
        for interval in sorted(c.supported_intervals, key=lambda i: i.ms):
            frame = await c.ohlcv("SOLUSDT", interval, start, end)
            expected = sorted({t - t % interval.ms for t in minutes})
            assert open_ms(frame, exchange) == expected, interval


async def test_coinbase_has_no_4h_and_says_why(sandbox: SandboxServer) -> None:
    async with client(sandbox, Exchange.COINBASE) as c:
        assert Interval.H4 not in c.supported_intervals
        with pytest.raises(BadRequest, match="resampled from 1h"):
            await c.ohlcv("BTCUSDT", Interval.H4, LEAP_DAY, LEAP_DAY + DAY)
        assert c.stats.requests == 0


@pytest.mark.parametrize("exchange", [Exchange.BINANCE, Exchange.OKX])
async def test_listing_date_inside_the_range(sandbox: SandboxServer, exchange: Exchange):
    start = datetime(2024, 4, 1, tzinfo=UTC)
    async with client(sandbox, exchange) as c:
        hourly = await c.ohlcv("ENAUSDT", Interval.H1, start, start + 2 * DAY)
        minutes = await c.ohlcv("ENAUSDT", Interval.M1, start, start + 2 * DAY)
        funding = await c.funding("ENAUSDT", start, start + 2 * DAY)
    listed = ms(datetime(2024, 4, 2, 8, tzinfo=UTC))
    assert open_ms(hourly, exchange) == list(range(listed, ms(start + 2 * DAY), 3_600_000))
    assert open_ms(minutes, exchange)[0] == listed and minutes.height == 16 * 60
    if exchange is Exchange.BINANCE:  # 4-hourly from the listing; OKX keeps only 3 months
        assert funding["fundingTime"].to_list() == [listed + h * 3_600_000 for h in (0, 4, 8, 12)]


async def test_coinbase_does_not_list_ena(sandbox: SandboxServer) -> None:
    async with client(sandbox, Exchange.COINBASE) as c:
        with pytest.raises(UnknownSymbol) as info:
            await c.ohlcv("ENAUSDT", Interval.H1, LEAP_DAY, LEAP_DAY + DAY)
    assert "coinbase" in str(info.value) and "ENAUSDT" in str(info.value)


@pytest.mark.parametrize("exchange", list(Exchange))
async def test_window_ending_now_drops_the_unfinished_candle(sandbox, exchange):
    now = datetime.now(UTC)
    async with client(sandbox, exchange) as c:
        frame = await c.ohlcv("BTCUSDT", Interval.M1, now - timedelta(hours=2), now + DAY)
    times = open_ms(frame, exchange)
    done = ms(datetime.now(UTC))
    assert times and all(t + 60_000 <= done for t in times)
    assert times[-1] >= ms(now) - 3 * 60_000  # the last closed minutes are there


@pytest.mark.parametrize("exchange", list(Exchange))
async def test_unknown_symbol_names_exchange_and_symbol(sandbox, exchange) -> None:
    async with client(sandbox, exchange) as c:
        with pytest.raises(UnknownSymbol) as info:
            await c.ohlcv("NOPEUSDT", Interval.M1, LEAP_DAY, LEAP_DAY + DAY)
        with pytest.raises(UnknownSymbol):
            await c.resolve("BNBUSDT" if exchange is Exchange.COINBASE else "NOPEUSDT", "spot")  # type: ignore[arg-type]
    assert exchange.value in str(info.value) and "NOPEUSDT" in str(info.value)


async def test_empty_and_reversed_windows_make_no_request(sandbox: SandboxServer):
    async with client(sandbox, Exchange.BINANCE) as c:
        await c.resolve("BTCUSDT", MarketKind.SPOT)
        before = c.stats.requests
        frame = await c.ohlcv("BTCUSDT", Interval.M1, LEAP_DAY, LEAP_DAY)
        assert frame.height == 0 and frame.schema == bronze_schema(Exchange.BINANCE, Dataset.OHLCV)
        assert (await c.funding("BTCUSDT", LEAP_DAY + DAY, LEAP_DAY)).height == 0
        assert c.stats.requests == before + 1  # only the perp instruments


# -- funding and open interest -------------------------------------------------------------


async def test_binance_funding_follows_the_interval_switch(sandbox: SandboxServer) -> None:
    start = datetime(2024, 5, 31, tzinfo=UTC)
    async with client(sandbox, Exchange.BINANCE) as c:
        frame = await c.funding("SOLUSDT", start, start + 2 * DAY)
    assert frame.schema == bronze_schema(Exchange.BINANCE, Dataset.FUNDING)
    hours = [(t - ms(start)) // 3_600_000 for t in frame["fundingTime"]]
    assert hours == [0, 8, 16, 24, 28, 32, 36, 40, 44]


async def test_binance_funding_pages_over_a_long_range(sandbox: SandboxServer) -> None:
    start = datetime(2023, 1, 1, tzinfo=UTC)
    async with client(sandbox, Exchange.BINANCE) as c:
        frame = await c.funding("BTCUSDT", start, start + timedelta(days=400))
        assert c.stats.by_endpoint["/fapi/v1/fundingRate"] == 2
    times = frame["fundingTime"].to_list()
    assert len(times) == 1200 and times == sorted(set(times))


async def test_okx_funding_recent_and_depth(sandbox: SandboxServer) -> None:
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    async with client(sandbox, Exchange.OKX) as c:
        frame = await c.funding("ETHUSDT", end - timedelta(days=7), end)
        depth = c.history_depth(Dataset.FUNDING)
        old = await c.funding("ETHUSDT", LEAP_DAY, LEAP_DAY + DAY)
    assert frame.schema == bronze_schema(Exchange.OKX, Dataset.FUNDING)
    assert frame.height == 21
    assert depth is not None and timedelta(days=60) <= depth <= timedelta(days=100)
    assert old.height == 0  # older than the endpoint serves: "not available", not an error


@pytest.mark.parametrize("exchange", [Exchange.BINANCE, Exchange.OKX])
async def test_open_interest_history_hourly(sandbox: SandboxServer, exchange: Exchange):
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=10)
    async with client(sandbox, exchange) as c:
        frame = await c.open_interest("BTCUSDT", start, end)
        depth = c.history_depth(Dataset.OPEN_INTEREST)
    assert frame.schema == bronze_schema(exchange, Dataset.OPEN_INTEREST)
    column = "timestamp" if exchange is Exchange.BINANCE else "ts"
    times = frame[column].cast(pl.Int64).to_list()
    assert times == list(range(ms(start), ms(end), 3_600_000))
    assert set(frame["source"]) == {"history"} and set(frame["interval"]) == {"1h"}
    assert depth is not None and depth >= timedelta(days=30)


async def test_binance_open_interest_older_than_30_days_is_not_requested(sandbox):
    async with client(sandbox, Exchange.BINANCE) as c:
        frame = await c.open_interest("BTCUSDT", LEAP_DAY, LEAP_DAY + DAY)
        assert frame.height == 0
        assert "/futures/data/openInterestHist" not in c.stats.by_endpoint


@pytest.mark.parametrize("exchange", [Exchange.BINANCE, Exchange.OKX])
async def test_open_interest_snapshot(sandbox: SandboxServer, exchange: Exchange) -> None:
    async with client(sandbox, exchange) as c:
        frame = await c.open_interest_snapshot("ETHUSDT")
    assert frame.height == 1 and frame["source"][0] == "snapshot"
    assert frame.schema == bronze_schema(exchange, Dataset.OPEN_INTEREST)
    assert frame["native_symbol"][0] in {"ETHUSDT", "ETH-USDT-SWAP"}


async def test_coinbase_has_no_derivatives(sandbox: SandboxServer) -> None:
    async with client(sandbox, Exchange.COINBASE) as c:
        for call in (
            c.funding("BTCUSDT", LEAP_DAY, LEAP_DAY + DAY),
            c.open_interest("BTCUSDT", LEAP_DAY, LEAP_DAY + DAY),
            c.open_interest_snapshot("BTCUSDT"),
        ):
            with pytest.raises(BadRequest, match="coinbase"):
                await call
        assert (await c.instruments(MarketKind.PERP)).height == 0


# -- instruments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exchange", "kind", "native"),
    [
        (Exchange.BINANCE, MarketKind.SPOT, "BTCUSDT"),
        (Exchange.BINANCE, MarketKind.PERP, "BTCUSDT"),
        (Exchange.OKX, MarketKind.SPOT, "BTC-USDT"),
        (Exchange.OKX, MarketKind.PERP, "BTC-USDT-SWAP"),
        (Exchange.COINBASE, MarketKind.SPOT, "BTC-USDT"),
    ],
)
async def test_instruments_and_symbol_mapping(sandbox, exchange, kind, native) -> None:
    async with client(sandbox, exchange) as c:
        frame = await c.instruments(kind)
        again = await c.instruments(kind)
        found = await c.resolve("BTCUSDT", kind)
        assert c.stats.requests == 1  # cached per client
    assert frame is again
    assert frame.schema == bronze_schema(exchange, Dataset.INSTRUMENTS)
    assert found.native_symbol == native and (found.base, found.quote) == ("BTC", "USDT")
    assert set(frame["kind"]) == {kind.value}


# -- faults --------------------------------------------------------------------------------


async def fetch_everything(url: str) -> dict[str, pl.DataFrame]:
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - DAY
    out: dict[str, pl.DataFrame] = {}
    async with open_clients(list(Exchange), url, rate_limits=False, retry=TEST_RETRY) as clients:
        for exchange, c in clients.items():
            out[f"{exchange}-1m"] = await c.ohlcv("BTCUSDT", Interval.M1, LEAP_DAY, LEAP_DAY + DAY)
            out[f"{exchange}-1h"] = await c.ohlcv(
                "ETHUSDT", Interval.H1, LEAP_DAY, LEAP_DAY + 20 * DAY
            )
            if exchange is not Exchange.COINBASE:
                out[f"{exchange}-fund"] = await c.funding("BTCUSDT", end - 20 * DAY, end)
                out[f"{exchange}-oi"] = await c.open_interest("BTCUSDT", end - 6 * DAY, end)
    return {k: data_only(v) for k, v in out.items()}


@pytest.mark.parametrize("profile", ["flaky", "hostile"])
async def test_fault_profiles_return_the_clean_data(sandbox, make_sandbox, profile):
    clean = await fetch_everything(sandbox.url)
    faulty_server = make_sandbox(seed=7, faults=profile)
    faulty = await fetch_everything(faulty_server.url)
    stats = faulty_server.stats()
    assert sum(s["faults"] for s in stats.values()) > 0
    for key, frame in clean.items():
        assert frame.equals(faulty[key]), key


async def test_failing_symbol_gives_up_with_a_named_error(make_sandbox) -> None:
    from clients.protocol import ExchangeUnavailable

    server = make_sandbox(seed=7, fail={("okx", "BTCUSDT")})
    async with client(server, Exchange.OKX) as c:
        with pytest.raises(ExchangeUnavailable) as info:
            await c.ohlcv("BTCUSDT", Interval.H1, LEAP_DAY, LEAP_DAY + DAY)
        assert c.stats.retries == TEST_RETRY.attempts - 1
    text = str(info.value)
    assert "okx" in text and "BTCUSDT" in text and "history-candles" in text


@pytest.mark.parametrize("exchange", list(Exchange))
async def test_withheld_day_inside_the_range(make_sandbox, exchange: Exchange) -> None:
    """A day without rows in the middle of a range: the cursors carry on past it."""
    server = make_sandbox(seed=7, empty={(exchange.value, "XRPUSDT", "2024-03-02")})
    start = datetime(2024, 3, 1, tzinfo=UTC)
    async with client(server, exchange) as c:
        frame = await c.ohlcv("XRPUSDT", Interval.M1, start, start + 3 * DAY)
    days = {t // 86_400_000 for t in open_ms(frame, exchange)}
    assert days == {ms(start) // 86_400_000, ms(start + 2 * DAY) // 86_400_000}
    if exchange is not Exchange.COINBASE:
        assert frame.height == 2 * 1440
