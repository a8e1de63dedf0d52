"""The Binance public data archive (data.binance.vision) at its real paths.

Served files, each a zip holding one CSV plus a sibling ``.CHECKSUM`` (``sha256sum`` format):

* ``/data/{spot|futures/um}/{monthly|daily}/klines/{SYMBOL}/{interval}/`` then
  ``{SYMBOL}-{interval}-{period}.zip`` (intraday intervals ``1m`` .. ``1d``): the same
  candles, printed the same way, as the sandbox's ``/api/v3/klines`` (spot) and
  ``/fapi/v1/klines`` (USD-M) answer. Spot CSVs have no header row and, from 2025-01-01, open
  and close times in **microseconds**; futures CSVs have a header row and stay in ms.
* ``/data/futures/um/monthly/fundingRate/{SYMBOL}/{SYMBOL}-fundingRate-{YYYY-MM}.zip``: header
  ``calc_time,funding_interval_hours,last_funding_rate`` (the rates ``/fapi/v1/fundingRate``
  serves; no mark price).
* ``/data/futures/um/daily/metrics/{SYMBOL}/{SYMBOL}-metrics-{YYYY-MM-DD}.zip``: 5-minute rows,
  header ``create_time,symbol,sum_open_interest,sum_open_interest_value,...``; ``create_time`` is
  text and about 3 % of rows are stamped one second late (``00:05:01``), as seen live. The open
  interest equals what ``/futures/data/openInterestHist`` serves for the same times.

Availability, documented for tests (any seed):

* A daily file appears 8 hours after its day ends; a monthly file on the first Monday after the
  month ends (00:00 UTC). Before that, and for periods before the listing, the answer is 404.
* Missing daily files (404 for good): every market's daily files of 2024-05-20, plus a seeded
  1 in 100 (symbol, market, day) (:func:`missing_day`).
* Missing monthly files: spot XRPUSDT 2024-04 and USD-M SOLUSDT 2024-04 (:data:`MISSING_MONTHS`).
* With ``--faults`` other than ``none``: spot ``BTCUSDT-1m-2024-03.zip`` is always served
  truncated (a corrupt zip whose checksum does not match) and spot ``ETHUSDT-1m-2024-03.zip``
  always with a wrong ``.CHECKSUM``; ``hostile`` also truncates about 2 % of zip answers
  (transient: a retry gets the good file).
* A symbol configured to fail (``SandboxConfig.fail``) is answered 503, as its REST endpoints.
* Tests can add faults by file name: :func:`archive_faults` (``corrupt``, ``bad_checksum``,
  ``flaky`` = name -> number of truncated answers before good ones, ``missing``), and replace
  a file as Binance sometimes does: ``replaced`` = name -> ``revised`` (the same rows with one
  column revised: klines' trade count + 1, a funding rate + 1e-8, open interest × 1.001) or
  ``shortened`` (rows dropped: a klines or funding file's last day, a metrics file's last
  hour); its ``.CHECKSUM`` follows.

Rows withheld by ``SandboxConfig.empty`` are withheld here too.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
from aiohttp import web

from sandbox import catalog, market
from sandbox.binance import BINANCE_BARS
from sandbox.config import SandboxConfig
from sandbox.listing import HOUR_MS, PERP, SPOT, Listing, utc_ms
from sandbox.market import MINUTE_MS, Bar, stable_key, uniform
from sandbox.state import STATE, SandboxState

PREFIX = "/data/"
MICROS_SINCE_MS = utc_ms("2025-01-01")  # spot times in microseconds from here on
DAILY_DELAY_MS = 8 * HOUR_MS
MISSING_DAY_PROBABILITY = 0.01
MISSING_DAYS: frozenset[date] = frozenset({date(2024, 5, 20)})
MISSING_MONTHS: frozenset[tuple[str, str, str]] = frozenset(
    {("spot", "XRPUSDT", "2024-04"), ("futures/um", "SOLUSDT", "2024-04")}
)
BROKEN_FILES = {  # with faults on: file name -> what is wrong with it
    "BTCUSDT-1m-2024-03.zip": "corrupt",
    "ETHUSDT-1m-2024-03.zip": "bad_checksum",
}
TRANSIENT_CORRUPT = {"hostile": 0.02, "flaky": 0.0, "none": 0.0}
FUTURES_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
    "taker_buy_volume,taker_buy_quote_volume,ignore"
)
FUNDING_HEADER = "calc_time,funding_interval_hours,last_funding_rate"
METRICS_HEADER = (
    "create_time,symbol,sum_open_interest,sum_open_interest_value,"
    "count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,"
    "count_long_short_ratio,sum_taker_long_short_vol_ratio"
)
CACHED_BYTES = 384 * 2**20  # built zips kept (a 1m month is ~2.5 MB): a year of 5 symbols fits

_KLINES = re.compile(
    r"^/data/(spot|futures/um)/(monthly|daily)/klines/([A-Z0-9]{1,20})/([0-9a-z]{2,3})/"
    r"([A-Z0-9]{1,20})-([0-9a-z]{2,3})-(\d{4}-\d{2}(?:-\d{2})?)\.zip(\.CHECKSUM)?$"
)
_FUNDING = re.compile(
    r"^/data/futures/um/monthly/fundingRate/([A-Z0-9]{1,20})/"
    r"([A-Z0-9]{1,20})-fundingRate-(\d{4}-\d{2})\.zip(\.CHECKSUM)?$"
)
_METRICS = re.compile(
    r"^/data/futures/um/daily/metrics/([A-Z0-9]{1,20})/"
    r"([A-Z0-9]{1,20})-metrics-(\d{4}-\d{2}-\d{2})\.zip(\.CHECKSUM)?$"
)


# --------------------------------------------------------------------------- state


@dataclass
class ArchiveFaults:
    """Per-server archive faults by file name (the ``.zip`` name)."""

    corrupt: set[str] = field(default_factory=set)
    bad_checksum: set[str] = field(default_factory=set)
    flaky: dict[str, int] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)
    # name -> how the file was replaced since first published: "revised" (the same rows, one
    # column revised: new content and checksum) or "shortened" (fewer rows); see `replaced`
    replaced: dict[str, str] = field(default_factory=dict)
    requests: int = 0  # every archive GET (zip and .CHECKSUM, 404s included)
    served: int = 0  # zip bodies served
    served_bytes: int = 0


@dataclass
class ArchiveState:
    faults: ArchiveFaults
    cache: OrderedDict[tuple[object, ...], bytes] = field(default_factory=OrderedDict)
    held: int = 0
    draws: int = 0
    building: dict[tuple[object, ...], asyncio.Future[tuple[str, bytes] | None]] = field(
        default_factory=dict
    )


ARCHIVE = web.AppKey("sandbox_archive", ArchiveState)


def install(app: web.Application, config: SandboxConfig) -> None:
    """Register the archive's route and state on the sandbox app."""
    faults = ArchiveFaults()
    if config.faults != "none":
        for name, what in BROKEN_FILES.items():
            (faults.corrupt if what == "corrupt" else faults.bad_checksum).add(name)
    app[ARCHIVE] = ArchiveState(faults)
    app.router.add_get(PREFIX + "{tail:.+}", handle)


def archive_faults(app: web.Application) -> ArchiveFaults:
    """The archive faults of a running sandbox app (tests add file names to its sets)."""
    return app[ARCHIVE].faults


# --------------------------------------------------------------------------- periods


def _period(text: str) -> tuple[int, int, bool] | None:
    """[start, end) in ms of a ``YYYY-MM`` or ``YYYY-MM-DD`` period, and whether it is a month."""
    try:
        if len(text) == 7:
            first = date.fromisoformat(text + "-01")
            nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
            return _ms(first), _ms(nxt), True
        day = date.fromisoformat(text)
    except ValueError:
        return None
    return _ms(day), _ms(day + timedelta(days=1)), False


def _ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def published_ms(end_ms: int, monthly: bool) -> int:
    """When a period's file appears: daily 8 h after the day, monthly the first Monday after."""
    if not monthly:
        return end_ms + DAILY_DELAY_MS
    first = datetime.fromtimestamp(end_ms / 1000, UTC).date()
    return _ms(first + timedelta(days=(7 - first.weekday()) % 7))


def missing_day(seed: int, market_name: str, symbol: str, day: date) -> bool:
    """Whether a daily file is missing for good (fixed days plus a seeded 1 in 100)."""
    if day in MISSING_DAYS:
        return True
    n = (day - date(1970, 1, 1)).days
    key = stable_key(seed, "archive-missing", market_name, symbol)
    return bool(uniform(key, np.array([n], dtype=np.int64))[0] < MISSING_DAY_PROBABILITY)


# --------------------------------------------------------------------------- formatting


def _fixed(units: np.ndarray, decimals: int, out_decimals: int) -> pl.Series:
    """``sandbox.common.fixed`` as a Polars string column (same text, vectorised)."""
    if out_decimals >= decimals:
        values = units * 10 ** (out_decimals - decimals)
    else:
        values = units // 10 ** (decimals - out_decimals)
    series = pl.Series(values.astype(np.int64))
    if out_decimals == 0:
        return series.cast(pl.String)
    scale = 10**out_decimals
    whole = (series // scale).cast(pl.String)
    frac = (series % scale).cast(pl.String).str.zfill(out_decimals)
    return pl.select(pl.concat_str([whole, pl.lit("."), frac])).to_series()


def kline_csv(listing: Listing, bar: Bar, c: market.Candles, futures: bool) -> bytes:
    """The archive CSV of candles ``c``: the REST kline fields, the REST text of each number."""
    td = listing.tick_decimals
    lm, ld = listing.lot_parts
    price_out, qty_out, quote_out = (td, ld, 4) if futures else (8, 8, 8)
    opens = c.ts.astype(np.int64)
    closes = bar.close_times(c.ts).astype(np.int64) - 1
    if not futures:  # microseconds from 2025-01-01
        micros = opens >= MICROS_SINCE_MS
        opens = np.where(micros, opens * 1000, opens)
        closes = np.where(micros, (closes + 1) * 1000 - 1, closes)
    frame = pl.DataFrame(
        [
            pl.Series("open_time", opens),
            _fixed(c.open, td, price_out).alias("open"),
            _fixed(c.high, td, price_out).alias("high"),
            _fixed(c.low, td, price_out).alias("low"),
            _fixed(c.close, td, price_out).alias("close"),
            _fixed(c.volume * lm, ld, qty_out).alias("volume"),
            pl.Series("close_time", closes),
            _fixed(c.quote_volume * lm, td + ld, quote_out).alias("quote_volume"),
            pl.Series("count", c.trades.astype(np.int64)),
            _fixed(c.taker_base * lm, ld, qty_out).alias("taker_buy_volume"),
            _fixed(c.taker_quote * lm, td + ld, quote_out).alias("taker_buy_quote_volume"),
            pl.Series("ignore", np.zeros(len(c), dtype=np.int64)),
        ]
    )
    body = frame.write_csv(include_header=False, line_terminator="\n").encode()
    return (FUTURES_HEADER + "\n").encode() + body if futures else body


def funding_csv(seed: int, listing: Listing, times: np.ndarray) -> bytes:
    lines = [FUNDING_HEADER]
    if len(times):
        f = market.funding(seed, listing, int(times[0]), int(times[-1]) + 1)
        keep = np.isin(f.time, times)
        for t, h, rate in zip(
            f.time[keep].tolist(),
            f.interval_hours[keep].tolist(),
            f.rate[keep].tolist(),
            strict=True,
        ):
            lines.append(f"{t},{h},{rate:.8f}")
    return ("\n".join(lines) + "\n").encode()


def metrics_csv(seed: int, listing: Listing, times: np.ndarray) -> bytes:
    oi, mark = market.open_interest(seed, listing, times)
    value = oi * mark
    key = stable_key(seed, "metrics", listing.native)
    late = uniform(key, times // MINUTE_MS) < 0.03
    ratios = 0.5 + uniform(key ^ 1, times // MINUTE_MS)
    lines = [METRICS_HEADER]
    for t, a, b, lag, r in zip(
        times.tolist(), oi.tolist(), value.tolist(), late.tolist(), ratios.tolist(), strict=True
    ):
        stamp = datetime.fromtimestamp(t / 1000 + (1 if lag else 0), UTC)
        lines.append(
            f"{stamp:%Y-%m-%d %H:%M:%S},{listing.native},{a:.8f},{b:.8f},"
            f"{r * 1.1:.8f},{r:.8f},{r * 0.9:.8f},{r * 1.05:.8f}"
        )
    return ("\n".join(lines) + "\n").encode()


def zipped(name: str, csv: bytes) -> bytes:
    """The zip of one CSV, byte-identical for the same CSV (a fixed member time): a file built
    twice (its .CHECKSUM and zip asked at once) is the same file, as the live archive's is."""
    buffer = io.BytesIO()
    member = zipfile.ZipInfo(name.removesuffix(".zip") + ".csv", date_time=(2020, 1, 1, 0, 0, 0))
    member.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr(member, csv, compresslevel=1)
    return buffer.getvalue()


def replaced(name: str, data: bytes, how: str) -> bytes:
    """A zip as replaced at the source, under the same name. `revised`: the same rows with one
    column revised (klines: trade count + 1; fundingRate: rate + 1e-8; metrics: open interest
    × 1.001). `shortened`: klines and fundingRate lose the rows of their last day, a daily
    metrics file the rows of its last hour."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        lines = archive.read(archive.namelist()[0]).decode().splitlines()
    header = [ln for ln in lines[:1] if ln and not ln[0].isdigit()]
    rows = [ln.split(",") for ln in lines[len(header) :] if ln]
    metrics, funding = "-metrics-" in name, "-fundingRate-" in name
    if how == "revised":
        for row in rows:
            if metrics:
                row[2] = f"{float(row[2]) * 1.001:.8f}"
            elif funding:
                row[2] = f"{float(row[2]) + 1e-8:.8f}"
            else:
                row[8] = str(int(row[8]) + 1)
    elif how == "shortened":
        if metrics:  # create_time "YYYY-MM-DD HH:MM:SS": the last hour's rows
            last_hour = rows[-1][0][:13]
            rows = [r for r in rows if r[0][:13] != last_hour]
        else:
            last = _day_of(rows[-1][0])
            rows = [r for r in rows if _day_of(r[0]) != last]
    else:
        raise ValueError(f"unknown replacement {how!r} of {name}")
    body = "\n".join([*header, *(",".join(r) for r in rows)]) + "\n"
    return zipped(name, body.encode())


def _day_of(open_time: str) -> int:
    value = int(open_time)
    return (value // 1000 if value > 10**14 else value) // (MINUTE_MS * 1440)


# --------------------------------------------------------------------------- files


def _listing(kind: str, native: str) -> Listing | None:
    return catalog.by_native("binance", kind, native)


def _klines_file(
    state: SandboxState, market_name: str, native: str, interval: str, start: int, end: int
) -> bytes | None:
    futures = market_name != "spot"
    listing = _listing(PERP if futures else SPOT, native)
    bar = BINANCE_BARS.get(interval)
    if listing is None or bar is None or not bar.intraday or end <= listing.listed_ms:
        return None
    c = market.candles(state.seed, listing, bar, start, end, end)
    c = c.take(state.keep("binance", listing.symbol, c.ts))
    return kline_csv(listing, bar, c, futures)


def _funding_file(state: SandboxState, native: str, start: int, end: int) -> bytes | None:
    listing = _listing(PERP, native)
    if listing is None or end <= listing.listed_ms:
        return None
    times, _ = market.funding_times(listing, max(start, listing.listed_ms), end)
    times = times[state.keep("binance", listing.symbol, times)]
    return funding_csv(state.seed, listing, times)


def _metrics_file(state: SandboxState, native: str, start: int, end: int) -> bytes | None:
    listing = _listing(PERP, native)
    if listing is None or end <= listing.listed_ms:
        return None
    step = 5 * MINUTE_MS
    first = -(-max(start, listing.listed_ms) // step) * step
    times = np.arange(first, end, step, dtype=np.int64)
    times = times[state.keep("binance", listing.symbol, times)]
    return metrics_csv(state.seed, listing, times)


def _build(state: SandboxState, path: str) -> tuple[str, bytes] | None:
    """(zip name, zip bytes) of an archive path (without ``.CHECKSUM``), None for 404."""
    now = state.now_ms()
    if found := _KLINES.match(path):
        market_name, freq, native, interval, native2, interval2, text = found.groups()[:7]
        if native != native2 or interval != interval2:
            return None
        period = _period(text)
        if period is None or period[2] != (freq == "monthly"):
            return None
        start, end, monthly = period
        if now < published_ms(end, monthly):
            return None
        if monthly and (market_name, native, text) in MISSING_MONTHS:
            return None
        if not monthly and missing_day(state.seed, market_name, native, date.fromisoformat(text)):
            return None
        csv = _klines_file(state, market_name, native, interval, start, end)
        name = f"{native}-{interval}-{text}.zip"
    elif found := _FUNDING.match(path):
        native, native2, text = found.groups()[:3]
        period = _period(text)
        if native != native2 or period is None or now < published_ms(period[1], True):
            return None
        csv = _funding_file(state, native, period[0], period[1])
        name = f"{native}-fundingRate-{text}.zip"
    elif found := _METRICS.match(path):
        native, native2, text = found.groups()[:3]
        period = _period(text)
        if native != native2 or period is None or now < published_ms(period[1], False):
            return None
        if missing_day(state.seed, "metrics", native, date.fromisoformat(text)):
            return None
        csv = _metrics_file(state, native, period[0], period[1])
        name = f"{native}-metrics-{text}.zip"
    else:
        return None
    if csv is None:
        return None
    return name, zipped(name, csv)


async def _cached(
    archive: ArchiveState, state: SandboxState, path: str
) -> tuple[str, bytes] | None:
    """A built file from the cache, else built in a worker thread (Polars and zlib release the
    GIL, so files build in parallel and the loop keeps serving)."""
    key = (state.seed, path)
    hit = archive.cache.get(key)
    if hit is not None:
        archive.cache.move_to_end(key)
        return path.rsplit("/", 1)[1], hit
    pending = archive.building.get(key)
    if pending is None:  # one build per file, shared by concurrent asks
        pending = asyncio.ensure_future(asyncio.to_thread(_build, state, path))
        archive.building[key] = pending
        pending.add_done_callback(lambda _: archive.building.pop(key, None))
    built = await asyncio.shield(pending)
    if built is None:
        return None
    if key not in archive.cache:
        archive.cache[key] = built[1]
        archive.held += len(built[1])
    while archive.held > CACHED_BYTES and len(archive.cache) > 1:
        _, dropped = archive.cache.popitem(last=False)
        archive.held -= len(dropped)
    return built


def _transient(archive: ArchiveState, state: SandboxState) -> bool:
    p = TRANSIENT_CORRUPT.get(state.config.faults, 0.0)
    if not p:
        return False
    archive.draws += 1
    key = stable_key(state.seed, "archive-fault")
    return bool(uniform(key, np.array([archive.draws], dtype=np.int64))[0] < p)


def _not_found() -> web.Response:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
        b"<Message>The specified key does not exist.</Message></Error>"
    )
    return web.Response(body=body, status=404, content_type="application/xml")


async def handle(request: web.Request) -> web.Response:
    """GET of an archive file or its ``.CHECKSUM``."""
    state = request.app[STATE]
    archive = request.app[ARCHIVE]
    faults = archive.faults
    path = request.path
    checksum = path.endswith(".CHECKSUM")
    zip_path = path.removesuffix(".CHECKSUM")
    name = zip_path.rsplit("/", 1)[1]
    faults.requests += 1
    state.count("binance", path)  # counted with Binance's requests (no weight: another host)
    if name in faults.missing:
        return _not_found()
    native = zip_path.split("/")[-3 if "/klines/" in zip_path else -2]
    for kind in (SPOT, PERP):
        listing = _listing(kind, native)
        if listing is not None and (("binance", listing.symbol) in state.config.fail):
            return web.Response(text="Service Unavailable", status=503)
    built = await _cached(archive, state, zip_path)
    if built is None:
        return _not_found()
    _, data = built
    if name in faults.replaced:
        data = await asyncio.to_thread(replaced, name, data, faults.replaced[name])
    if checksum:
        digest = hashlib.sha256(data).hexdigest()
        if name in faults.bad_checksum:
            digest = hashlib.sha256(data + b"replaced").hexdigest()
        body = f"{digest}  {name}\n".encode()
        return web.Response(body=body, content_type="text/plain")
    if name in faults.corrupt or faults.flaky.get(name, 0) > 0 or _transient(archive, state):
        if faults.flaky.get(name, 0) > 0:
            faults.flaky[name] -= 1
        data = data[: len(data) // 2]
    faults.served += 1
    faults.served_bytes += len(data)
    return web.Response(body=data, content_type="application/zip")
