"""Binance public data archive (data.binance.vision): periods, files, checksums, CSV decoding.

The archive is a transport choice inside `clients.binance.BinanceClient`: closed periods come
from monthly files (a month that has ended) or daily files (days of a month whose file is not
out yet), the recent tail and every period the archive does not have (404) from REST. This
module holds the parts without the client: the period plan (`plan_segments`), the file paths
(`klines_path`, `funding_path`, `metrics_path`), the CSV decoders, and `ArchiveReader`, which
downloads a file and its `.CHECKSUM`, verifies the SHA-256, unzips it, decodes it and keeps the
decoded tables in a small LRU bounded in bytes (a month of per-day calls downloads the month
once; memory stays flat however long the range).

Facts handled (binance-public-data README and issues #283, #386, #404):
* spot kline CSVs have no header row, USD-M ones have one (detected by the first byte);
* spot open/close times are in microseconds from 2025-01-01 (normalised to milliseconds);
* daily files appear the next day (a day or two late: 404 until then), monthly ones on the
  first Monday of the next month; some days are missing for good (404);
* archives are sometimes replaced: each file's SHA-256 goes into the rows' `source`, so a
  replaced month is told apart from the stored one;
* `fundingRate` monthly CSV header `calc_time,funding_interval_hours,last_funding_rate`;
* `metrics` daily CSV (5-minute rows) with text `create_time` sometimes a second late: snapped
  to the 5-minute grid.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import random
import re
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import aiohttp
import numpy as np
import polars as pl

from clients.frames import Provenance, _bronze_schema
from clients.protocol import ExchangeUnavailable
from models.bronze import PROVENANCE
from models.enums import Dataset, Exchange, MarketKind

try:  # ISA-L inflates about 2.5 times as fast as zlib; zlib when it is not installed
    from isal import isal_zlib as _inflate
except ImportError:  # pragma: no cover - isal is a dependency; a stripped install still works
    import zlib as _inflate  # type: ignore[no-redef]

log = logging.getLogger(__name__)

Source = Literal["rest", "archive", "auto"]
SOURCES: tuple[str, ...] = ("rest", "archive", "auto")
ARCHIVE_URL = "https://data.binance.vision"
REST_SOURCE = "rest"

DAY_MS = 86_400_000
FIVE_MINUTES_MS = 300_000
# A daily file is tried once its day ended this long ago (it appears the next day); a monthly
# file once its month ended this long ago (published on the first Monday: until then 404, and
# the month's days come from daily files).
DAILY_LAG = timedelta(hours=12)
MONTHLY_LAG = timedelta(days=1)
MICROSECONDS_ABOVE = 10**14  # epoch values above this are microseconds (ms stay below ~1e13)

KLINE_FIELDS: tuple[str, ...] = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "trades",
    "taker_buy_base",
    "taker_buy_quote",
    "ignore",
)
_KLINE_INTS = ("open_time", "close_time", "trades")


def _market(kind: MarketKind) -> str:
    return "spot" if kind is MarketKind.SPOT else "futures/um"


def klines_path(kind: MarketKind, native: str, interval: str, period: str) -> str:
    """`/data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-03.zip` (daily: `YYYY-MM-DD`)."""
    freq = "monthly" if len(period) == 7 else "daily"
    name = f"{native}-{interval}-{period}.zip"
    return f"/data/{_market(kind)}/{freq}/klines/{native}/{interval}/{name}"


def funding_path(native: str, month: str) -> str:
    name = f"{native}-fundingRate-{month}.zip"
    return f"/data/futures/um/monthly/fundingRate/{native}/{name}"


def metrics_path(native: str, day: str) -> str:
    return f"/data/futures/um/daily/metrics/{native}/{native}-metrics-{day}.zip"


_KLINES_NAME = re.compile(r"^([A-Z0-9]{1,30})-(\w{2,3})-(\d{4}-\d{2}(?:-\d{2})?)\.zip$")
_FUNDING_NAME = re.compile(r"^([A-Z0-9]{1,30})-fundingRate-(\d{4}-\d{2})\.zip$")
_METRICS_NAME = re.compile(r"^([A-Z0-9]{1,30})-metrics-(\d{4}-\d{2}-\d{2})\.zip$")


@dataclass(frozen=True)
class StoredFile:
    """An archive file named in stored rows' `source` (`archive:{name}:{sha256[:16]}`)."""

    name: str
    sha256_prefix: str

    @classmethod
    def parse(cls, source: str | None) -> StoredFile | None:
        """The file of a `source` label; None for REST rows (`rest`, `history`, null)."""
        if not source or not source.startswith("archive:"):
            return None
        parts = source.split(":")
        if len(parts) != 3 or not parts[1].endswith(".zip") or not parts[2]:
            raise ValueError(f"malformed archive source label {source!r}")
        return cls(parts[1], parts[2].lower())

    def path(self, kind: MarketKind) -> str:
        """The file's archive path (`kind`: the market of klines files)."""
        if found := _KLINES_NAME.match(self.name):
            native, interval, period = found.groups()
            return klines_path(kind, native, interval, period)
        if found := _FUNDING_NAME.match(self.name):
            return funding_path(*found.groups())
        if found := _METRICS_NAME.match(self.name):
            return metrics_path(*found.groups())
        raise ValueError(f"not an archive file name this pipeline reads: {self.name!r}")


# --------------------------------------------------------------------------- errors


class ArchiveUnavailable(ExchangeUnavailable):
    """An archive file could not be used (missing, corrupt, checksum mismatch); names the file."""


class _Corrupt(Exception):
    """One download did not verify (checksum, zip, CSV); retried, then reported."""


# --------------------------------------------------------------------------- periods


@dataclass(frozen=True)
class Segment:
    """A piece of a request window and where it is read: a monthly or daily file, or REST."""

    kind: Literal["monthly", "daily", "rest"]
    start: int  # ms, inclusive
    end: int  # ms, exclusive
    period: str | None = None  # YYYY-MM or YYYY-MM-DD for files


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def plan_segments(
    start_ms: int,
    end_ms: int,
    now_ms: int,
    *,
    monthly: bool = True,
    daily: bool = True,
    daily_lag: timedelta = DAILY_LAG,
    monthly_lag: timedelta = MONTHLY_LAG,
) -> list[Segment]:
    """Split [start, end) into file and REST segments, oldest first (adjacent REST merged).

    A day of a month that ended at least `monthly_lag` ago is read from the monthly file
    (also when only one day of it is asked: the file is cached); other days that ended at
    least `daily_lag` ago from daily files; the rest from REST.
    """
    out: list[Segment] = []

    def add(seg: Segment) -> None:
        if seg.kind == "rest" and out and out[-1].kind == "rest" and out[-1].end == seg.start:
            out[-1] = Segment("rest", out[-1].start, seg.end)
        else:
            out.append(seg)

    month = _utc(start_ms).date().replace(day=1)
    while _ms(month) < end_ms:
        m_start, m_end = _ms(month), _ms(_next_month(month))
        lo, hi = max(start_ms, m_start), min(end_ms, m_end)
        if monthly and now_ms >= m_end + monthly_lag.total_seconds() * 1000:
            add(Segment("monthly", lo, hi, f"{month:%Y-%m}"))
        else:
            day = _utc(lo).date()
            while _ms(day) < hi:
                d_start, d_end = _ms(day), _ms(day + timedelta(days=1))
                a, b = max(lo, d_start), min(hi, d_end)
                if daily and now_ms >= d_end + daily_lag.total_seconds() * 1000:
                    add(Segment("daily", a, b, day.isoformat()))
                else:
                    add(Segment("rest", a, b))
                day += timedelta(days=1)
        month = _next_month(month)
    return out


def days_of(segment: Segment) -> list[Segment]:
    """A monthly segment as daily segments (when the monthly file is missing)."""
    out = []
    day = _utc(segment.start).date()
    while _ms(day) < segment.end:
        a, b = max(segment.start, _ms(day)), min(segment.end, _ms(day + timedelta(days=1)))
        out.append(Segment("daily", a, b, day.isoformat()))
        day += timedelta(days=1)
    return out


# --------------------------------------------------------------------------- decoding


def _has_header(csv: bytes) -> bool:
    first = csv.lstrip()[:1]
    return bool(first) and not first.isdigit()


def _to_ms(column: str) -> pl.Expr:
    """Microsecond epoch values (spot from 2025) to milliseconds; ms values unchanged."""
    col = pl.col(column)
    return pl.when(col > MICROSECONDS_ABOVE).then(col // 1000).otherwise(col).alias(column)


_KLINE_SCHEMA: dict[str, pl.DataType] = {
    name: pl.Int64() if name in _KLINE_INTS else pl.String() for name in KLINE_FIELDS
}


def parse_klines(csv: bytes) -> pl.DataFrame:
    """Kline CSV (spot without header, futures with one) → the 12 REST fields, REST types.

    Read straight from the bytes with the final types (no all-text pass and casts after). A
    CSV with no line (a period without trades, e.g. after a delisting) holds no rows."""
    if not csv.strip():
        return pl.DataFrame(schema=_KLINE_SCHEMA)
    line_end = csv.find(b"\n")
    first = csv[: line_end if line_end >= 0 else len(csv)].rstrip(b"\r")
    if first.count(b",") + 1 != len(KLINE_FIELDS):
        raise _Corrupt(f"expected {len(KLINE_FIELDS)} kline columns, got {first[:80]!r}")
    frame = pl.read_csv(
        csv,
        has_header=False,
        skip_rows=1 if _has_header(csv) else 0,
        schema=_KLINE_SCHEMA,
    )
    return frame.with_columns(_to_ms("open_time"), _to_ms("close_time"))


def _text_csv(csv: bytes, needed: set[str]) -> pl.DataFrame:
    """A CSV with a header, every column as text; a CSV with no line holds no rows (of the
    `needed` columns)."""
    if not csv.strip():
        return pl.DataFrame(schema=dict.fromkeys(sorted(needed), pl.String()))
    return pl.read_csv(io.BytesIO(csv), infer_schema=False)


def parse_funding(csv: bytes) -> pl.DataFrame:
    """`calc_time,funding_interval_hours,last_funding_rate` → fundingTime, fundingRate,
    markPrice (null: the archive has no mark price). A CSV with no line holds no rows."""
    needed = {"calc_time", "last_funding_rate"}
    frame = _text_csv(csv, needed)
    missing = needed - set(frame.columns)
    if missing:
        raise _Corrupt(f"fundingRate CSV lacks {sorted(missing)}")
    return frame.select(
        _to_ms_text("calc_time").alias("fundingTime"),
        pl.col("last_funding_rate").alias("fundingRate"),
        pl.lit(None, pl.String).alias("markPrice"),
    )


def _to_ms_text(column: str) -> pl.Expr:
    col = pl.col(column).cast(pl.Int64)
    return pl.when(col > MICROSECONDS_ABOVE).then(col // 1000).otherwise(col)


def parse_metrics(csv: bytes) -> pl.DataFrame:
    """Daily `metrics` CSV → timestamp (snapped to the 5-minute grid), sumOpenInterest,
    sumOpenInterestValue (base units and USDT, as openInterestHist). A CSV with no line
    holds no rows."""
    needed = {"create_time", "sum_open_interest", "sum_open_interest_value"}
    frame = _text_csv(csv, needed)
    if needed - set(frame.columns):
        raise _Corrupt(f"metrics CSV lacks {sorted(needed - set(frame.columns))}")
    stamp = (
        pl.col("create_time")
        .str.to_datetime("%Y-%m-%d %H:%M:%S", time_zone="UTC", time_unit="ms")
        .dt.epoch("ms")
    )
    snapped = ((stamp + FIVE_MINUTES_MS // 2) // FIVE_MINUTES_MS) * FIVE_MINUTES_MS
    return frame.select(
        snapped.alias("timestamp"),
        pl.col("sum_open_interest").alias("sumOpenInterest"),
        pl.col("sum_open_interest_value").alias("sumOpenInterestValue"),
    ).unique("timestamp", keep="first", maintain_order=True)


def bronze_rows(
    raw: pl.DataFrame,
    prov: Provenance,
    dataset: Dataset,
    constants: dict[str, str | None],
) -> pl.DataFrame:
    """Decoded archive rows as a bronze frame (provenance columns, raw fields, `source`)."""
    return with_times(bronze_block(raw, prov, dataset, constants), prov)


def bronze_block(
    raw: pl.DataFrame,
    prov: Provenance,
    dataset: Dataset,
    constants: dict[str, str | None],
) -> pl.DataFrame:
    """`raw` as a bronze frame without the window and fetch times (`with_times` adds them).

    Built once per file and instrument (`Table.bronze`): every other column is the same for
    each day of the file, so a day is a zero-copy slice of it."""
    height = raw.height
    values = prov.columns()
    columns: list[pl.Series] = []
    for name, dtype in _bronze_schema(prov.exchange, dataset).items():
        if name in _TIME_COLUMNS:
            continue
        if name in PROVENANCE:
            columns.append(_repeat(name, values[name], dtype, height))
        elif name in constants or name not in raw.columns:
            columns.append(_repeat(name, constants.get(name), dtype, height))
        else:
            column = raw.get_column(name)
            columns.append(column if column.dtype == dtype else column.cast(dtype))
    return pl.DataFrame(columns)


def with_times(block: pl.DataFrame, prov: Provenance) -> pl.DataFrame:
    """`block` (rows of `bronze_block`, or a slice of them) with the window and fetch times of
    `prov` in their places of the bronze schema; the other columns are shared."""
    out = block.clone()  # shallow: the columns are shared, `block` is left as it was
    times = pl.Series([prov.window_start, prov.window_end, prov.fetched_at], dtype=pl.Int64())
    times = times.cast(PROVENANCE["fetched_at"])  # one build for the three (epoch ms)
    for row, (name, index) in enumerate(_TIME_PLACES):
        out.insert_column(index, times.new_from_index(row, out.height).alias(name))
    return out


def _repeat(name: str, value: object, dtype: pl.DataType, height: int) -> pl.Series:
    """A column holding `value` (null: None) in each of `height` rows."""
    return pl.Series(name, [value], dtype=dtype).new_from_index(0, height)


_TIME_COLUMNS = ("window_start", "window_end", "fetched_at")  # one type: UTC epoch ms
# Each time column's index in every bronze schema (provenance columns come first, in order).
_TIME_PLACES = tuple((name, list(PROVENANCE).index(name)) for name in _TIME_COLUMNS)
# What the bronze frame of a file adds to its rows, a row: the provenance text columns and
# `source`, a 16-byte view each.
_BLOCK_ROW_BYTES = 16 * (len(PROVENANCE) - len(_TIME_COLUMNS) + 1)


# --------------------------------------------------------------------------- reader


@dataclass(frozen=True)
class Table:
    """A decoded, verified archive file: its rows and the `source` label they carry."""

    name: str
    sha256: str
    rows: pl.DataFrame
    # column -> its values when ascending without nulls (a zero-copy view), else None
    _keys: dict[str, np.ndarray | None] = field(default_factory=dict, compare=False, repr=False)
    # the rows as a bronze frame, for the one instrument (key) it was last built for
    _block: dict[tuple[object, ...], pl.DataFrame] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def source(self) -> str:
        return f"archive:{self.name}:{self.sha256[:16]}"

    def bronze(
        self, column: str, start: int, end: int, prov: Provenance, dataset: Dataset
    ) -> pl.DataFrame:
        """`bronze_rows` of the rows with `column` in [start, end): a zero-copy slice of the
        file's rows as a bronze frame, built once for the file's instrument (one per table:
        another instrument's call replaces it), when the file is in time order."""
        span = self._span(column, start, end)
        if span is None:
            return bronze_rows(self.between(column, start, end), prov, dataset, self._constants)
        key = (dataset, prov.exchange, prov.symbol, prov.native_symbol, prov.interval)
        block = self._block.get(key)
        if block is None:
            self._block.clear()  # one instrument's frame held at a time
            block = self._block[key] = bronze_block(self.rows, prov, dataset, self._constants)
        return with_times(block.slice(span[0], span[1] - span[0]), prov)

    def footprint(self) -> int:
        """Bytes the table holds: its rows and the columns its bronze frame adds to them."""
        return footprint(self.rows) + self.rows.height * _BLOCK_ROW_BYTES

    @property
    def _constants(self) -> dict[str, str | None]:
        return {"source": self.source}

    def _span(self, column: str, start: int, end: int) -> tuple[int, int] | None:
        """Row offsets [lo, hi) of `column` in [start, end) by binary search; None when the
        column is not ascending without nulls (then rows are filtered)."""
        if column not in self._keys:
            key = self.rows.get_column(column)
            ordered = key.dtype == pl.Int64() and key.null_count() == 0 and key.is_sorted()
            self._keys[column] = key.to_numpy() if ordered else None
        values = self._keys[column]
        if values is None:
            return None
        lo, hi = np.searchsorted(values, [start, end], side="left")
        return int(lo), max(int(lo), int(hi))

    def between(self, column: str, start: int, end: int) -> pl.DataFrame:
        """Rows with `column` in [start, end): a zero-copy slice found by binary search when
        the file is in time order (as published), a filter otherwise."""
        span = self._span(column, start, end)
        if span is None:
            return self.rows.filter((pl.col(column) >= start) & (pl.col(column) < end))
        return self.rows.slice(span[0], span[1] - span[0])


@dataclass
class ArchiveStats:
    """What the archive transport did (the REST requests are in the client's `stats`)."""

    requests: int = 0  # zip and .CHECKSUM GETs, 404s included
    bytes: int = 0
    files: int = 0  # files verified and decoded
    not_found: int = 0
    retries: int = 0  # downloads repeated after a checksum, zip or transport failure
    cache_hits: int = 0
    evictions: int = 0
    fallbacks: int = 0  # periods served from REST because their file could not be used
    by_kind: dict[str, int] = field(default_factory=dict)


class ArchiveReader:
    """Downloads, verifies, decodes and caches archive files for one client."""

    def __init__(
        self,
        base_url: str,
        session: Callable[[], aiohttp.ClientSession],
        *,
        attempts: int = 3,
        cache_bytes: int = 192 * 2**20,
        timeout: float = 120.0,
        base_delay: float = 0.2,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self.attempts = max(1, attempts)
        self.cache_bytes = cache_bytes
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.base_delay = base_delay
        self.stats = ArchiveStats()
        self._cache: OrderedDict[str, tuple[Table | None, int]] = OrderedDict()
        self._held = 0
        self._inflight: dict[str, asyncio.Future[Table | None]] = {}

    @property
    def cached_bytes(self) -> int:
        return self._held

    async def table(self, path: str, parse: Callable[[bytes], pl.DataFrame]) -> Table | None:
        """The verified, decoded file at `path` (None: 404), once per file while cached.

        Concurrent callers share one download. Raises `ArchiveUnavailable` naming the file
        when it does not verify after `attempts` downloads (never a wrong table).
        """
        hit = self._cache.get(path)
        if hit is not None:
            self._cache.move_to_end(path)
            self.stats.cache_hits += 1
            return hit[0]
        pending = self._inflight.get(path)
        if pending is not None:
            self.stats.cache_hits += 1
            return await asyncio.shield(pending)
        future: asyncio.Future[Table | None] = asyncio.get_running_loop().create_future()
        self._inflight[path] = future
        try:
            table = await self._load(path, parse)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, no "never retrieved" warning
            raise
        finally:
            self._inflight.pop(path, None)
        future.set_result(table)
        self._remember(path, table)
        return table

    def _remember(self, path: str, table: Table | None) -> None:
        size = table.footprint() if table is not None else 0
        self._cache[path] = (table, size)
        self._held += size
        while self._held > self.cache_bytes and len(self._cache) > 1:
            _, (_, freed) = self._cache.popitem(last=False)
            self._held -= freed
            self.stats.evictions += 1

    async def served_checksum(self, path: str) -> str | None:
        """The SHA-256 the archive lists now for the file at `path` (its `.CHECKSUM`, one small
        request; None: 404). Raises `ArchiveUnavailable` naming the file when it cannot be
        read after `attempts` tries."""
        name = path.rsplit("/", 1)[1]
        problem = ""
        for attempt in range(self.attempts):
            if attempt:
                await self._pause_before_retry(attempt)
            try:
                status, listed = await self._get(path + ".CHECKSUM")
                if status == 404:
                    self.stats.not_found += 1
                    return None
                if status != 200:
                    raise _Corrupt(f".CHECKSUM answered HTTP {status}")
                return _checksum(listed, name)
            except _Corrupt as exc:
                problem = str(exc)
            except (TimeoutError, aiohttp.ClientError) as exc:
                problem = f"request failed: {type(exc).__name__} {exc}"
        raise ArchiveUnavailable(
            f"archive file {name}: .CHECKSUM unusable after {self.attempts} attempts: {problem}",
            exchange=Exchange.BINANCE,
            endpoint=path + ".CHECKSUM",
        )

    async def _pause_before_retry(self, attempt: int) -> None:
        """Count a retry and wait its jittered, doubling backoff."""
        self.stats.retries += 1
        await asyncio.sleep(self.base_delay * 2 ** (attempt - 1) * random.uniform(0.5, 1))

    async def _get(self, path: str) -> tuple[int, bytes]:
        self.stats.requests += 1
        kind = "CHECKSUM" if path.endswith(".CHECKSUM") else "zip"
        self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + 1
        async with self._session().get(self.base_url + path, timeout=self.timeout) as response:
            body = await response.read()
            self.stats.bytes += len(body)
            return response.status, body

    async def _load(self, path: str, parse: Callable[[bytes], pl.DataFrame]) -> Table | None:
        name = path.rsplit("/", 1)[1]
        problem = ""
        for attempt in range(self.attempts):
            if attempt:
                await self._pause_before_retry(attempt)
            try:
                # The .CHECKSUM and the zip are asked at once (one round trip, not two).
                download = asyncio.ensure_future(self._get(path))
                try:
                    status, listed = await self._get(path + ".CHECKSUM")
                    if status == 404:
                        self.stats.not_found += 1
                        return None
                    if status != 200:
                        raise _Corrupt(f".CHECKSUM answered HTTP {status}")
                    expected = _checksum(listed, name)
                    status, data = await download
                finally:
                    if not download.done():
                        download.cancel()
                    elif not download.cancelled():
                        download.exception()  # retrieved: no "never retrieved" warning
                if status == 404:  # listed a moment ago: being replaced; try again
                    raise _Corrupt("zip answered 404 after its .CHECKSUM")
                if status != 200:
                    raise _Corrupt(f"zip answered HTTP {status}")
                # Hashing, inflating and decoding release the GIL: off the event loop, in
                # parallel with other files' downloads.
                digest, rows = await asyncio.to_thread(_verify_decode, parse, data, name, expected)
            except _Corrupt as exc:
                problem = str(exc)
                log.warning("archive file %s: %s (attempt %d)", name, problem, attempt + 1)
                continue
            except (TimeoutError, aiohttp.ClientError) as exc:
                problem = f"request failed: {type(exc).__name__} {exc}"
                continue
            except pl.exceptions.PolarsError as exc:
                problem = f"undecodable CSV: {exc}"
                continue
            self.stats.files += 1
            return Table(name, digest, rows)
        raise ArchiveUnavailable(
            f"archive file {name} unusable after {self.attempts} attempts: {problem}",
            exchange=Exchange.BINANCE,
            endpoint=path,
        )


def footprint(frame: pl.DataFrame) -> int:
    """Bytes a decoded table holds: Polars' estimate plus the 16-byte view of every text value
    (which `estimated_size` leaves out: a month of 1m klines holds ~13 MB, not the 5.6 MB
    estimated), so that the cache's bound is the memory it really keeps."""
    text = sum(1 for dtype in frame.dtypes if dtype in (pl.String(), pl.Binary()))
    return int(frame.estimated_size()) + 16 * frame.height * text


def _verify_decode(
    parse: Callable[[bytes], pl.DataFrame], data: bytes, name: str, expected: str
) -> tuple[str, pl.DataFrame]:
    """The zip's SHA-256 checked against its .CHECKSUM, then its CSV decoded."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise _Corrupt(f"SHA-256 {digest[:16]}… does not match .CHECKSUM {expected[:16]}…")
    return digest, parse(_unzip(data, name))


def _checksum(listed: bytes, name: str) -> str:
    """The hex digest of a `sha256sum` line (`<hex>  <file>`)."""
    parts = listed.decode("ascii", "replace").split()
    if not parts or len(parts[0]) != 64 or any(c not in "0123456789abcdefABCDEF" for c in parts[0]):
        raise _Corrupt(f"malformed .CHECKSUM {listed[:80]!r}")
    if len(parts) > 1 and parts[1].lstrip("*") != name:
        raise _Corrupt(f".CHECKSUM names {parts[1]!r}, not {name}")
    return parts[0].lower()


def _unzip(data: bytes, name: str) -> bytes:
    """The one CSV member of a zip, inflated (with ISA-L when installed: about 2.5 times
    zlib's speed, the largest cost of reading a month) and its CRC-32 checked."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [m for m in archive.infolist() if m.filename.endswith(".csv")]
            if len(members) != 1:
                raise _Corrupt(f"zip holds {len(members)} CSV files, expected 1")
            member = members[0]
            if member.compress_type != zipfile.ZIP_DEFLATED or member.flag_bits & 0x1:
                return archive.read(member)
            # The member's data follow its local header (30 bytes, name, extra field).
            offset = member.header_offset
            header = data[offset : offset + 30]
            if len(header) != 30 or header[:4] != b"PK\x03\x04":
                raise _Corrupt("bad zip: local header not found")
            start = offset + 30 + int.from_bytes(header[26:28], "little")
            start += int.from_bytes(header[28:30], "little")
            raw = data[start : start + member.compress_size]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise _Corrupt(f"bad zip: {exc}") from None
    try:
        csv = _inflate.decompress(raw, -15)
    except Exception as exc:  # zlib.error / isal_zlib.error
        raise _Corrupt(f"bad zip: {exc}") from None
    if len(csv) != member.file_size or _inflate.crc32(csv) != member.CRC:
        raise _Corrupt("bad zip: CRC-32 or size of the CSV does not match")
    return csv
