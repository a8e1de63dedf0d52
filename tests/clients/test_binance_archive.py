"""The Binance archive path against the sandbox: archive rows equal REST rows, files are
verified (a corrupt zip, a wrong checksum or a missing file ends in REST data or an error naming
the file, never wrong rows), a month is downloaded once for many per-day calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from clients.binance import BinanceClient
from clients.binance_archive import (
    ArchiveUnavailable,
    Table,
    bronze_rows,
    parse_funding,
    parse_klines,
    parse_metrics,
    plan_segments,
)
from clients.factory import make_client
from clients.frames import Provenance, _bronze_schema
from models.bronze import PROVENANCE as PROVENANCE_TYPES
from models.enums import Dataset, Exchange, Interval, MarketKind
from models.errors import InputError
from models.settings import load_settings
from sandbox import SandboxServer, universe
from sandbox.archive import archive_faults, missing_day

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
KEEP_OUT = ("fetched_at", "source")


def utc(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def client(url: str, source: str, **kwargs: object) -> BinanceClient:
    made = make_client(Exchange.BINANCE, sandbox_url=url, binance_source=source, **kwargs)  # type: ignore[arg-type]
    assert isinstance(made, BinanceClient)
    return made


def same_rows(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    cols = [c for c in a.columns if c not in KEEP_OUT]
    return a.select(cols).equals(b.select(cols))


async def both(
    url: str, call: Callable[[BinanceClient], object]
) -> tuple[pl.DataFrame, pl.DataFrame, BinanceClient]:
    async with client(url, "auto") as archived, client(url, "rest") as rest:
        a = await call(archived)  # type: ignore[misc]
        r = await call(rest)  # type: ignore[misc]
        return a, r, archived


# --------------------------------------------------------------------------- equality


@pytest.mark.parametrize("kind", [MarketKind.SPOT, MarketKind.PERP])
def test_a_month_of_1m_klines_from_the_archive_equals_rest(sandbox_url: str, kind) -> None:
    start, end = utc(2024, 6, 1), utc(2024, 7, 1)

    async def call(c: BinanceClient) -> pl.DataFrame:
        return await c.ohlcv("ETHUSDT", Interval.M1, start, end, kind=kind)

    a, r, archived = asyncio.run(both(sandbox_url, call))
    assert a.height == 30 * 1440 and same_rows(a, r)
    assert a["source"].unique().to_list()[0].startswith("archive:ETHUSDT-1m-2024-06.zip:")
    assert r["source"].unique().to_list() == ["rest"]
    assert archived.archive.stats.by_kind == {"CHECKSUM": 1, "zip": 1}
    assert "/api/v3/klines" not in archived.stats.by_endpoint
    assert "/fapi/v1/klines" not in archived.stats.by_endpoint


def test_funding_from_the_archive_equals_rest_funding(sandbox_url: str) -> None:
    # SOLUSDT funds every 8 h before 2024-06-01 and every 4 h after: both in the window.
    start, end = utc(2024, 5, 1), utc(2024, 8, 1)

    async def call(c: BinanceClient) -> pl.DataFrame:
        return await c.funding("SOLUSDT", start, end)

    a, r, archived = asyncio.run(both(sandbox_url, call))
    assert a.height == 31 * 3 + 30 * 6 + 31 * 6
    assert a.select("fundingTime", "fundingRate").equals(r.select("fundingTime", "fundingRate"))
    assert a["markPrice"].null_count() == a.height  # the archive has no mark price
    assert archived.archive.stats.files == 3
    assert "/fapi/v1/fundingRate" not in archived.stats.by_endpoint


def test_open_interest_from_metrics_files_equals_rest(sandbox_url: str) -> None:
    today = datetime.now(UTC).date()
    day = next(
        d
        for d in (today - timedelta(days=n) for n in range(3, 20))
        if not missing_day(7, "metrics", "BTCUSDT", d)
    )
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)

    async def call(c: BinanceClient) -> pl.DataFrame:
        return await c.open_interest("BTCUSDT", start, start + timedelta(days=1))

    a, r, _ = asyncio.run(both(sandbox_url, call))
    cols = ["timestamp", "sumOpenInterest", "sumOpenInterestValue"]
    assert a.height == 24 and a.select(cols).equals(r.select(cols))
    assert a["source"][0].startswith("archive:BTCUSDT-metrics-")
    assert r["source"].unique().to_list() == ["history"]


def test_open_interest_older_than_rest_depth_comes_from_the_archive(sandbox_url: str) -> None:
    async def run() -> pl.DataFrame:
        async with client(sandbox_url, "auto") as c:
            return await c.open_interest("ETHUSDT", utc(2024, 3, 10), utc(2024, 3, 12))

    frame = asyncio.run(run())
    assert frame.height == 48
    assert (frame["timestamp"] % 3_600_000 == 0).all()


def test_microsecond_spot_times_from_2025_read_as_milliseconds(sandbox_url: str) -> None:
    start, end = utc(2024, 12, 31), utc(2025, 1, 2)

    async def call(c: BinanceClient) -> pl.DataFrame:
        return await c.ohlcv("BTCUSDT", Interval.M1, start, end)

    a, r, archived = asyncio.run(both(sandbox_url, call))
    assert a.height == 2 * 1440 and same_rows(a, r)
    assert a["open_time"].max() == int(end.timestamp() * 1000) - 60_000
    assert a["close_time"].max() == int(end.timestamp() * 1000) - 1
    assert archived.archive.stats.files == 2  # 2024-12 and 2025-01 monthly files


# --------------------------------------------------------------------------- requests, memory


def test_thirty_per_day_calls_download_the_month_once(sandbox_url: str) -> None:
    days = [utc(2024, 9, 1) + timedelta(days=n) for n in range(30)]

    async def run() -> tuple[list[pl.DataFrame], BinanceClient]:
        async with client(sandbox_url, "auto") as c:
            frames = await asyncio.gather(
                *(c.ohlcv("BNBUSDT", Interval.M1, d, d + timedelta(days=1)) for d in days)
            )
            return list(frames), c

    frames, c = asyncio.run(run())
    assert [f.height for f in frames] == [1440] * 30
    assert c.archive.stats.by_kind == {"CHECKSUM": 1, "zip": 1}
    assert c.stats.requests == 1  # exchangeInfo only


def test_the_month_cache_is_bounded(sandbox_url: str) -> None:
    async def run() -> BinanceClient:
        async with client(sandbox_url, "auto") as c:
            c.archive.cache_bytes = 16 * 2**20  # about one month of 1m candles (~12 MB)
            for month in (1, 2, 3, 4):
                start = utc(2023, month, 1)
                await c.ohlcv("BTCUSDT", Interval.M1, start, start + timedelta(days=1))
            return c

    c = asyncio.run(run())
    assert c.archive.stats.evictions >= 2
    assert c.archive.cached_bytes <= 16 * 2**20


def test_source_rest_never_touches_the_archive(sandbox_url: str) -> None:
    async def run() -> BinanceClient:
        async with client(sandbox_url, "rest") as c:
            await c.ohlcv("BTCUSDT", Interval.H1, utc(2024, 2, 1), utc(2024, 2, 3))
            await c.funding("BTCUSDT", utc(2024, 2, 1), utc(2024, 2, 3))
            return c

    assert asyncio.run(run()).archive.stats.requests == 0


# --------------------------------------------------------------------------- faults


@pytest.fixture
def server(make_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_sandbox(seed=7)


def month_both(url: str, symbol: str, month: int, **kwargs: object):
    start, end = utc(2024, month, 1), utc(2024, month + 1, 1)

    async def call(c: BinanceClient) -> pl.DataFrame:
        return await c.ohlcv(symbol, Interval.M1, start, end, **kwargs)  # type: ignore[arg-type]

    return asyncio.run(both(url, call))


@pytest.mark.parametrize("fault", ["corrupt", "bad_checksum"])
def test_an_unverified_file_is_retried_then_read_from_rest(server: SandboxServer, fault) -> None:
    getattr(archive_faults(server.app), fault).add("SOLUSDT-1m-2024-06.zip")
    a, r, archived = month_both(server.url, "SOLUSDT", 6)
    assert a.height == 30 * 1440 and same_rows(a, r)
    assert a["source"].unique().to_list() == ["rest"]  # nothing kept from the bad file
    stats = archived.archive.stats
    assert stats.retries == 2 and stats.fallbacks == 1 and stats.files == 0


@pytest.mark.parametrize("fault", ["corrupt", "bad_checksum"])
def test_forced_archive_names_the_unverified_file(server: SandboxServer, fault) -> None:
    getattr(archive_faults(server.app), fault).add("SOLUSDT-1m-2024-06.zip")

    async def run() -> None:
        async with client(server.url, "archive") as c:
            await c.ohlcv("SOLUSDT", Interval.M1, utc(2024, 6, 3), utc(2024, 6, 4))

    with pytest.raises(ArchiveUnavailable, match=r"SOLUSDT-1m-2024-06\.zip"):
        asyncio.run(run())


def test_a_truncated_answer_is_retried_and_the_file_kept(server: SandboxServer) -> None:
    archive_faults(server.app).flaky["BTCUSDT-1m-2024-06.zip"] = 1
    a, r, archived = month_both(server.url, "BTCUSDT", 6)
    assert same_rows(a, r) and a["source"][0].startswith("archive:BTCUSDT-1m-2024-06.zip")
    assert archived.archive.stats.retries == 1 and archived.archive.stats.fallbacks == 0


def test_a_missing_month_reads_daily_files_and_rest_for_missing_days(
    server: SandboxServer,
) -> None:
    # Spot XRPUSDT 2024-04 has no monthly file; one of its daily files is missing too.
    archive_faults(server.app).missing.add("XRPUSDT-1m-2024-04-10.zip")
    a, r, archived = month_both(server.url, "XRPUSDT", 4)
    assert a.height == 30 * 1440 and same_rows(a, r)
    sources = a.group_by("source").len()
    assert sources.filter(pl.col("source") == "rest")["len"].to_list() == [1440]
    assert archived.archive.stats.files == 29
    assert archived.stats.by_endpoint["/api/v3/klines"] == 2  # one day: 1,440 rows


def test_a_verified_file_without_rows_is_read_once_then_rest_has_the_say(
    server: SandboxServer,
) -> None:
    # The delisted symbol's month after its delisting: a verified zip of an empty CSV.
    month = date.fromisoformat(universe.NAMED_DELISTED[:10]).replace(day=1) + timedelta(days=62)
    first = datetime(month.year, month.month, 3, tzinfo=UTC)

    async def run(source: str) -> tuple[list[pl.DataFrame], BinanceClient]:
        async with client(server.url, source) as c:
            days = [first + timedelta(days=i) for i in range(3)]
            frames = [
                await c.ohlcv(universe.DELISTED_SPOT, Interval.M1, day, day + timedelta(1))
                for day in days
            ]
            return frames, c

    frames, archived = asyncio.run(run("auto"))
    assert all(f.is_empty() for f in frames)
    stats = archived.archive.stats
    # downloaded once, never retried; each day asked of REST, which has nothing either
    assert (stats.files, stats.retries, stats.fallbacks) == (1, 0, 3)
    assert archived.stats.by_endpoint["/api/v3/klines"] == 3 * 2  # 1,440 rows a day
    frames, forced = asyncio.run(run("archive"))  # archive only: the file's answer, no rows
    assert all(f.is_empty() for f in frames) and "/api/v3/klines" not in forced.stats.by_endpoint


@pytest.mark.parametrize("parse", [parse_klines, parse_funding, parse_metrics])
def test_a_csv_without_lines_holds_no_rows_of_the_usual_columns(parse) -> None:
    assert parse(b"").is_empty() and parse(b"\n").is_empty()
    assert parse(b"").schema == parse(b"\n").schema
    if parse is parse_klines:
        assert parse(b"").schema == parse_klines(b"1,2,3,4,5,6,7,8,9,10,11,0\n").schema


def test_forced_archive_names_a_missing_file(server: SandboxServer) -> None:
    archive_faults(server.app).missing.add("XRPUSDT-1m-2024-04-10.zip")

    async def run() -> None:
        async with client(server.url, "archive") as c:
            await c.ohlcv("XRPUSDT", Interval.M1, utc(2024, 4, 9), utc(2024, 4, 11))

    with pytest.raises(ArchiveUnavailable, match=r"XRPUSDT-1m-2024-04-10\.zip.*404"):
        asyncio.run(run())


def test_the_recent_tail_comes_from_rest(sandbox_url: str) -> None:
    now = datetime.now(UTC)
    start = datetime(now.year, now.month, now.day, tzinfo=UTC) - timedelta(days=3)

    async def run() -> pl.DataFrame:
        async with client(sandbox_url, "auto") as c:
            return await c.ohlcv("BTCUSDT", Interval.H1, start, now)

    frame = asyncio.run(run())
    assert "rest" in frame["source"].to_list()
    assert frame["open_time"].is_unique().all()


# --------------------------------------------------------------------------- pure parts


def ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def test_plan_uses_monthly_files_for_ended_months_then_daily_then_rest() -> None:
    now = ms(date(2024, 7, 15)) + 3_600_000  # 01:00 on the 15th
    segments = plan_segments(ms(date(2024, 6, 20)), ms(date(2024, 7, 16)), now)
    kinds = [(s.kind, s.period) for s in segments]
    assert kinds[0] == ("monthly", "2024-06")
    assert kinds[1:14] == [("daily", f"2024-07-{d:02d}") for d in range(1, 14)]
    assert [s.kind for s in segments[14:]] == ["rest"]  # the 14th (<12 h ago) and the 15th
    assert segments[-1].end == ms(date(2024, 7, 16))


def test_spot_csv_without_header_in_microseconds_and_futures_csv_with_header() -> None:
    spot = b"1735689600000000,4.15,4.2,4.1,4.18,10.0,1735689659999999,41.5,3,5.0,20.7,0\n"
    row = parse_klines(spot).row(0, named=True)
    assert row["open_time"] == 1735689600000 and row["close_time"] == 1735689659999
    assert row["open"] == "4.15" and row["trades"] == 3
    futures = (
        b"open_time,open,high,low,close,volume,close_time,quote_volume,count,"
        b"taker_buy_volume,taker_buy_quote_volume,ignore\n"
        b"1704067200000,42000.1,42010,41990,42005,12.5,1704067259999,525000,40,6,252000,0\n"
    )
    assert parse_klines(futures).row(0, named=True)["open_time"] == 1704067200000


def month_csv(days: int, *, shuffled: bool = False) -> bytes:
    """A spot kline CSV of `days` days of 1h candles (as published, or rows out of order)."""
    start = ms(date(2024, 3, 1))
    opens = [start + h * 3_600_000 for h in range(24 * days)]
    if shuffled:
        opens = opens[::2] + opens[1::2]
    rows = [
        f"{t},1.{i},2,0.5,1.5,{i}.25,{t + 3_599_999},7.5,{i},0.1,0.2,0" for i, t in enumerate(opens)
    ]
    return ("\n".join(rows) + "\n").encode()


@pytest.mark.parametrize("shuffled", [False, True])
def test_a_day_sliced_from_the_month_bronze_frame_equals_the_day_built_alone(
    shuffled: bool,
) -> None:
    table = Table(
        "BTCUSDT-1h-2024-03.zip", "ab" * 32, parse_klines(month_csv(5, shuffled=shuffled))
    )
    for day in (1, 3, 5, 6):  # the first, a middle, the last and a day past the file
        start = ms(date(2024, 3, day))
        prov = Provenance(
            Exchange.BINANCE, "BTCUSDT", "BTCUSDT", "1h", start, start + 86_400_000, day
        )
        got = table.bronze("open_time", start, start + 86_400_000, prov, Dataset.OHLCV)
        rows = table.rows.filter(pl.col("open_time").is_between(start, start + 86_400_000 - 1))
        alone = rows.select(
            *(pl.lit(v, PROVENANCE_TYPES[k]).alias(k) for k, v in prov.columns().items()),
            *(pl.col(c) for c in rows.columns),
            pl.lit(table.source).alias("source"),
        )
        assert got.schema == _bronze_schema(Exchange.BINANCE, Dataset.OHLCV)
        assert got.equals(alone)
        assert got.equals(bronze_rows(rows, prov, Dataset.OHLCV, {"source": table.source}))
        assert got.height == (24 if day <= 5 else 0)


def test_metrics_times_a_second_late_snap_to_the_grid() -> None:
    csv = (
        b"create_time,symbol,sum_open_interest,sum_open_interest_value,"
        b"count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,"
        b"count_long_short_ratio,sum_taker_long_short_vol_ratio\n"
        b"2024-03-01 00:05:01,BTCUSDT,100.5,6000000.1,1,1,1,1\n"
    )
    row = parse_metrics(csv).row(0, named=True)
    assert row["timestamp"] == ms(date(2024, 3, 1)) + 300_000
    assert row["sumOpenInterest"] == "100.5"


def test_a_zip_that_is_not_a_zip_is_never_decoded() -> None:
    from clients.binance_archive import _Corrupt, _unzip

    with pytest.raises(_Corrupt, match="bad zip"):
        _unzip(b"PK\x03\x04 truncated", "X.zip")


# --------------------------------------------------------------------------- settings


def test_source_setting_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().binance_source == "auto"
    monkeypatch.setenv("CRYPTO_PIPELINE_BINANCE_SOURCE", "ARCHIVE")
    assert load_settings().binance_source == "archive"
    monkeypatch.setenv("CRYPTO_PIPELINE_BINANCE_SOURCE", "ftp")
    with pytest.raises(InputError, match="BINANCE_SOURCE"):
        load_settings()


def test_make_client_points_the_archive_at_the_sandbox() -> None:
    made = make_client(Exchange.BINANCE, sandbox_url="http://127.0.0.1:9/", binance_source="auto")
    assert isinstance(made, BinanceClient)
    assert made.source == "auto" and made.archive.base_url == "http://127.0.0.1:9"
    live = make_client(Exchange.BINANCE)
    assert (
        isinstance(live, BinanceClient) and live.archive.base_url == "https://data.binance.vision"
    )
    with pytest.raises(ValueError, match="unknown Binance source"):
        make_client(Exchange.BINANCE, binance_source="ftp")


# --------------------------------------------------------------------------- replaced files


def test_stored_file_labels_name_their_archive_paths() -> None:
    from clients.binance_archive import StoredFile

    spot = StoredFile.parse("archive:BTCUSDT-1m-2024-03.zip:1A2B3C4D5E6F7A8B")
    assert spot == StoredFile("BTCUSDT-1m-2024-03.zip", "1a2b3c4d5e6f7a8b")
    assert spot.path(MarketKind.SPOT) == (
        "/data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-03.zip"
    )
    day = StoredFile.parse("archive:BTCUSDT-metrics-2024-03-02.zip:ab")
    assert day is not None and day.path(MarketKind.PERP).endswith(
        "/daily/metrics/BTCUSDT/BTCUSDT-metrics-2024-03-02.zip"
    )
    assert StoredFile.parse("rest") is None and StoredFile.parse(None) is None
    with pytest.raises(ValueError, match="malformed archive source label"):
        StoredFile.parse("archive:nonsense")


def test_a_replaced_file_serves_a_new_checksum(server: SandboxServer) -> None:
    path = "/data/spot/monthly/klines/BNBUSDT/1m/BNBUSDT-1m-2024-02.zip"

    async def run() -> tuple[str | None, str | None, int]:
        async with client(server.url, "auto") as c:
            before = await c.archive.served_checksum(path)
            archive_faults(server.app).replaced["BNBUSDT-1m-2024-02.zip"] = "shortened"
            after = await c.archive.served_checksum(path)
            table = await c.archive.table(path, parse_klines)
            assert table is not None and table.sha256 == after
            return before, after, table.rows.height

    before, after, rows = asyncio.run(run())
    assert before and after and before != after
    assert rows == 28 * 1440  # 2024-02 has 29 days; the last one is gone
