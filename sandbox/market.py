"""Deterministic, window-independent synthetic market data (pure numpy, no HTTP).

Every value is a function of (seed, listing, time) only, so any two request windows agree on the
rows they share. The log-price of an asset at minute ``k`` is a multi-year cycle plus a seasonal
cycle plus multi-octave hashed value noise (Brownian-like at every scale), then a small per-venue
basis (exchange, spot/perp, USD/USDT quote). A 1m candle opens at the price point of its minute
and closes at the next one, so open(k) == close(k-1); wicks, volumes and trade counts are hashed.
Prices are integer ticks and volumes integer lots, so coarser candles are *exact* aggregates.

Missing data, documented for tests:

* Before a listing's ``listed_ms`` there is no data, nor from its ``delisted_ms`` on (candles,
  funding).
* Maintenance gaps, exchange-wide (spot and perp): fixed ones independent of the seed,
  Binance 2024-02-29 03:00-03:30 UTC (30 minutes), OKX 2024-07-15 06:00-06:12 UTC (12 minutes),
  Coinbase 2024-11-05 14:20-14:28 UTC (8 minutes); plus seeded ones on about 1 day in 100 per
  exchange (5 to 30 minutes, see :func:`gap_days`).
* Coinbase USDT products skip about 0.3 % of minutes (no trades, no candle), as Coinbase omits
  intervals without ticks.
* Nothing exists after ``now``; the minute containing ``now`` is partial (volume pro rata).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from sandbox.listing import DAY_MS, PERP, Listing, utc_ms

MINUTE_MS = 60_000
MINUTES_PER_DAY = 1440
_U64 = np.uint64
_MASK53 = np.float64(2.0**-53)

FIXED_GAPS: dict[str, tuple[tuple[int, int], ...]] = {
    "binance": ((utc_ms("2024-02-29T03:00:00"), 30),),
    "okx": ((utc_ms("2024-07-15T06:00:00"), 12),),
    "coinbase": ((utc_ms("2024-11-05T14:20:00"), 8),),
}
GAP_PROBABILITY = 0.01
QUIET_PROBABILITY = 0.003

# Relative size of each venue's volume and open interest.
_VOLUME_FACTOR = {
    ("binance", "spot"): 1.0,
    ("okx", "spot"): 0.45,
    ("coinbase", "spot"): 0.35,
    ("binance", "perp"): 3.0,
    ("okx", "perp"): 1.4,
}
_BASIS = {"binance": 0.0, "okx": -0.00012, "coinbase": 0.00018}


# --------------------------------------------------------------------------- hashing


def stable_key(*parts: object) -> int:
    """A 64-bit key from any printable parts, stable across processes."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (wrapping arithmetic)."""
    x = x + _U64(0x9E3779B97F4A7C15)
    x ^= x >> _U64(30)
    x *= _U64(0xBF58476D1CE4E5B9)
    x ^= x >> _U64(27)
    x *= _U64(0x94D049BB133111EB)
    x ^= x >> _U64(31)
    return x


def _hashed(key: np.ndarray | np.uint64, index: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) values hashed from (key, integer index), uint64 keys broadcast on index."""
    with np.errstate(over="ignore"):
        x = _mix(index.astype(np.int64).view(_U64) ^ key)
    x >>= _U64(11)
    return x.astype(np.float64) * _MASK53


def uniform(key: int, index: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) values hashed from (key, integer index)."""
    return _hashed(_U64(key), index)


def normal(key: int, index: np.ndarray) -> np.ndarray:
    """Roughly standard-normal values (sum of three uniforms, rescaled)."""
    keys = np.array([key, key ^ 0x5555, key ^ 0xAAAA], dtype=_U64)
    u = _hashed(keys.reshape((3,) + (1,) * index.ndim), index)  # all three in one pass
    return (u[0] + u[1] + u[2] - 1.5) * 2.0


def _value_noise(key: int, k: np.ndarray, spacing: int) -> np.ndarray:
    """Linearly interpolated hashed noise on a grid of `spacing` minutes."""
    if spacing == 1:
        return normal(key, k)
    grid = np.floor_divide(k, spacing)
    frac = (k - grid * spacing) / spacing
    first, last = int(grid.min()), int(grid.max())
    if last - first + 2 > 2 * len(k):  # sparse times: hash only the nodes needed
        left = normal(key, grid)
        return left + (normal(key, grid + 1) - left) * frac
    nodes = normal(key, np.arange(first, last + 2, dtype=np.int64))
    left = nodes[grid - first]
    return left + (nodes[grid - first + 1] - left) * frac


# --------------------------------------------------------------------------- prices

_OCTAVES = (1, 4, 16, 64, 256, 1024, 4096, 16_384, 65_536)
_CYCLE_MINUTES = 3.3 * 525_960
_SEASON_MINUTES = 97 * 1440


def log_price(seed: int, listing: Listing, minutes: np.ndarray) -> np.ndarray:
    """Log price of a listing at the start of each given minute (minutes since epoch)."""
    asset = listing.asset
    k = minutes.astype(np.int64)
    kf = k.astype(np.float64)
    akey = stable_key(seed, "asset", asset.base)
    phase1 = uniform(akey, np.array([1]))[0] * 2 * np.pi
    phase2 = uniform(akey, np.array([2]))[0] * 2 * np.pi
    out = np.log(asset.price) + asset.swing * np.sin(2 * np.pi * kf / _CYCLE_MINUTES + phase1)
    out += 0.35 * asset.swing * np.sin(2 * np.pi * kf / _SEASON_MINUTES + phase2)
    sigma = asset.minute_vol
    for spacing in _OCTAVES:
        out += (0.5 * sigma * np.sqrt(spacing)) * _value_noise(akey ^ spacing, k, spacing)
    # Venue: constant basis plus small venue-specific noise that keeps venues close.
    vkey = stable_key(seed, "venue", listing.exchange, listing.kind, listing.quote, asset.base)
    out += _BASIS[listing.exchange]
    out += 0.25 * sigma * _value_noise(vkey, k, 1)
    out += 0.5 * sigma * _value_noise(vkey ^ 7, k, 16)
    if listing.kind == PERP:
        out += 0.0002 + 3 * sigma * _value_noise(vkey ^ 11, k, 240)
    if listing.quote == "USD":
        out += 0.0006 * np.sin(2 * np.pi * kf / (41 * 1440) + phase2)
    return out


def price(seed: int, listing: Listing, minutes: np.ndarray) -> np.ndarray:
    """Float price at the start of each minute."""
    return np.exp(log_price(seed, listing, minutes))


# --------------------------------------------------------------------------- candles


@dataclass(frozen=True)
class Candles:
    """Columnar candles: prices in integer ticks, volumes in integer lots.

    ``quote_volume``/``taker_quote`` are integers in units of ``lot * tick`` of quote currency.
    """

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    quote_volume: np.ndarray
    trades: np.ndarray
    taker_base: np.ndarray
    taker_quote: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: np.ndarray | slice) -> Candles:
        return Candles(*(getattr(self, name)[index] for name in _FIELDS))

    @staticmethod
    def concat(parts: list[Candles]) -> Candles:
        if not parts:
            return EMPTY
        if len(parts) == 1:
            return parts[0]
        return Candles(*(np.concatenate([getattr(p, name) for p in parts]) for name in _FIELDS))


_FIELDS = (
    "ts",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trades",
    "taker_base",
    "taker_quote",
)
_I64 = np.zeros(0, dtype=np.int64)
EMPTY = Candles(*(_I64 for _ in _FIELDS))


def gap_days(seed: int, exchange: str, first_day: int, last_day: int) -> list[tuple[int, int]]:
    """Seeded maintenance gaps as (start_ms, minutes) for days [first_day, last_day]."""
    days = np.arange(first_day, last_day + 1, dtype=np.int64)
    key = stable_key(seed, "gap", exchange)
    hit = days[uniform(key, days) < GAP_PROBABILITY]
    offsets = (uniform(key ^ 1, hit) * (MINUTES_PER_DAY - 60)).astype(np.int64)
    lengths = 5 + (uniform(key ^ 2, hit) * 26).astype(np.int64)
    return [
        (int(d) * DAY_MS + int(o) * MINUTE_MS, int(n))
        for d, o, n in zip(hit, offsets, lengths, strict=True)
    ]


def _present(seed: int, listing: Listing, k: np.ndarray) -> np.ndarray:
    """Boolean mask of minutes that have a candle (listing, gaps, quiet minutes)."""
    ms = k * MINUTE_MS
    mask = ms >= listing.listed_ms
    first_day, last_day = int(ms[0] // DAY_MS), int(ms[-1] // DAY_MS)
    gaps = [
        *FIXED_GAPS.get(listing.exchange, ()),
        *gap_days(seed, listing.exchange, first_day, last_day),
    ]
    for start, minutes in gaps:
        mask &= (ms < start) | (ms >= start + minutes * MINUTE_MS)
    if listing.exchange == "coinbase" and listing.quote == "USDT":
        qkey = stable_key(seed, "quiet", listing.native)
        mask &= uniform(qkey, k) >= QUIET_PROBABILITY
    return mask


def _minute_candles(seed: int, listing: Listing, k0: int, k1: int) -> Candles:
    """Full 1m candles for minutes [k0, k1), before masking."""
    asset = listing.asset
    tick = float(listing.tick)
    lot = float(listing.lot)
    k = np.arange(k0, k1, dtype=np.int64)
    points = np.arange(k0, k1 + 1, dtype=np.int64)
    p = price(seed, listing, points)
    ticks = np.maximum(np.rint(p / tick).astype(np.int64), 1)
    op, cl = ticks[:-1], ticks[1:]
    key = stable_key(seed, "candle", listing.exchange, listing.kind, listing.native)
    sigma = asset.minute_vol
    upper = np.maximum(op, cl)
    lower = np.minimum(op, cl)
    wick_h = sigma * 0.5 * -np.log1p(-uniform(key ^ 1, k))
    wick_l = sigma * 0.5 * -np.log1p(-uniform(key ^ 2, k))
    high = np.maximum(np.ceil(upper * (1 + wick_h)).astype(np.int64), upper)
    low = np.clip(np.floor(lower * (1 - wick_l)).astype(np.int64), 1, lower)
    move = np.abs(cl - op) / np.maximum(op, 1) / sigma
    day_phase = (k % MINUTES_PER_DAY) / MINUTES_PER_DAY
    seasonal = 1 + 0.35 * np.sin(2 * np.pi * (day_phase - 0.3))
    factor = _VOLUME_FACTOR.get((listing.exchange, listing.kind), 1.0)
    if listing.exchange == "coinbase" and listing.quote == "USDT":
        factor *= 0.05
    base_volume = asset.minute_volume * factor * seasonal * (0.55 + 0.45 * move)
    base_volume *= np.exp(0.6 * normal(key ^ 3, k) - 0.18)
    volume = np.floor(base_volume / lot).astype(np.int64)
    trade_count = np.rint(base_volume / asset.trade_size * (0.5 + uniform(key ^ 4, k)))
    trades = np.where(volume > 0, np.maximum(trade_count.astype(np.int64), 1), 0)
    vwap = (op + high + low + cl) // 4
    taker = np.floor(volume * (0.35 + 0.3 * uniform(key ^ 5, k))).astype(np.int64)
    return Candles(
        ts=k * MINUTE_MS,
        open=op,
        high=high,
        low=low,
        close=cl,
        volume=volume,
        quote_volume=volume * vwap,
        trades=trades,
        taker_base=taker,
        taker_quote=taker * vwap,
    )


def minute_candles(seed: int, listing: Listing, start_ms: int, end_ms: int) -> Candles:
    """Present 1m candles with open time in [start_ms, end_ms) (no wall-clock cut)."""
    if listing.delisted_ms is not None:
        end_ms = min(end_ms, listing.delisted_ms)  # nothing trades after the delisting
    k0 = -(-start_ms // MINUTE_MS)
    k1 = -(-end_ms // MINUTE_MS)
    if k1 <= k0 or k1 * MINUTE_MS <= listing.listed_ms:
        return EMPTY
    k0 = max(k0, listing.listed_ms // MINUTE_MS)
    full = _minute_candles(seed, listing, k0, k1)
    return full.take(_present(seed, listing, full.ts // MINUTE_MS))


@lru_cache(maxsize=384)
def _day_minutes(seed: int, listing: Listing, day: int) -> Candles:
    return minute_candles(seed, listing, day * DAY_MS, (day + 1) * DAY_MS)


def cached_minutes(seed: int, listing: Listing, start_ms: int, end_ms: int) -> Candles:
    """Like :func:`minute_candles`, through a per-UTC-day cache."""
    if end_ms <= start_ms:
        return EMPTY
    parts = []
    for day in range(start_ms // DAY_MS, (end_ms - 1) // DAY_MS + 1):
        chunk = _day_minutes(seed, listing, day)
        lo, hi = day * DAY_MS, (day + 1) * DAY_MS
        if start_ms > lo or end_ms < hi:
            chunk = chunk.take((chunk.ts >= start_ms) & (chunk.ts < end_ms))
        if len(chunk):
            parts.append(chunk)
    return Candles.concat(parts)


def aggregate(c: Candles, bucket: np.ndarray, bucket_ts: np.ndarray) -> Candles:
    """Aggregate sorted candles by a non-decreasing bucket id array.

    ``bucket_ts`` gives the open time of each distinct bucket, in order.
    """
    if len(c) == 0:
        return EMPTY
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], len(c)] - 1
    return Candles(
        ts=bucket_ts,
        open=c.open[starts],
        high=np.maximum.reduceat(c.high, starts),
        low=np.minimum.reduceat(c.low, starts),
        close=c.close[ends],
        volume=np.add.reduceat(c.volume, starts),
        quote_volume=np.add.reduceat(c.quote_volume, starts),
        trades=np.add.reduceat(c.trades, starts),
        taker_base=np.add.reduceat(c.taker_base, starts),
        taker_quote=np.add.reduceat(c.taker_quote, starts),
    )


def aggregate_fixed(c: Candles, length_ms: int, offset_ms: int = 0) -> Candles:
    """Aggregate into fixed buckets opening at ``offset_ms + n * length_ms``."""
    if len(c) == 0:
        return EMPTY
    bucket = (c.ts - offset_ms) // length_ms
    distinct = bucket[np.r_[True, bucket[1:] != bucket[:-1]]]
    return aggregate(c, bucket, distinct * length_ms + offset_ms)


def aggregate_months(c: Candles, shift_ms: int = 0) -> Candles:
    """Aggregate into calendar months of the clock ``shift_ms`` ahead of UTC."""
    if len(c) == 0:
        return EMPTY
    local = (c.ts + shift_ms).astype("datetime64[ms]")
    month = local.astype("datetime64[M]")
    bucket = month.astype(np.int64)
    distinct = month[np.r_[True, bucket[1:] != bucket[:-1]]]
    opens = distinct.astype("datetime64[ms]").astype(np.int64) - shift_ms
    return aggregate(c, bucket, opens)


# --------------------------------------------------------------------------- bars


@dataclass(frozen=True)
class Bar:
    """A candle interval: fixed length with an alignment offset, or calendar months."""

    length_ms: int  # nominal length (a month counts as 31 days for range maths)
    offset_ms: int = 0  # bucket opens at offset + n * length (fixed bars)
    months: int = 0  # >0 for calendar-month bars (1 or 3)

    @property
    def intraday(self) -> bool:
        return not self.months and DAY_MS % self.length_ms == 0

    def floor(self, ms: int) -> int:
        """Open time of the bucket containing ``ms``."""
        if self.months:
            return _month_floor(ms, self.offset_ms, self.months)
        return (ms - self.offset_ms) // self.length_ms * self.length_ms + self.offset_ms

    def next_open(self, open_ms: int) -> int:
        """Open time of the bucket after the one opening at ``open_ms``."""
        if self.months:
            return _month_floor(open_ms + 32 * DAY_MS * self.months, self.offset_ms, self.months)
        return open_ms + self.length_ms

    def window_start(self, window: int) -> int:
        """Open time of day-long window ``window`` of an intraday bar (aligned to its buckets)."""
        return window * DAY_MS + self.offset_ms % self.length_ms

    def close_times(self, opens: np.ndarray) -> np.ndarray:
        """Open time of the following bucket for each bucket open time."""
        if self.months:
            return np.array([self.next_open(int(t)) for t in opens], dtype=np.int64)
        return opens + self.length_ms


def _month_floor(ms: int, shift_ms: int, months: int) -> int:
    month = np.datetime64(ms + shift_ms, "ms").astype("datetime64[M]").astype(np.int64)
    month -= month % months
    return int(np.datetime64(int(month), "M").astype("datetime64[ms]").astype(np.int64)) - shift_ms


@lru_cache(maxsize=1024)
def _window(seed: int, listing: Listing, bar: Bar, window: int) -> Candles:
    """Aggregated candles of one day-long window [window*DAY + off, +DAY) of a coarse bar."""
    off = bar.offset_ms % bar.length_ms
    lo = window * DAY_MS + off
    return aggregate_fixed(cached_minutes(seed, listing, lo, lo + DAY_MS), bar.length_ms, off)


def _partial(c: Candles, now_ms: int) -> Candles:
    """Cut candles at ``now_ms``: later minutes vanish, the current minute is pro rata."""
    c = c.take(c.ts <= now_ms)
    if len(c) and c.ts[-1] + MINUTE_MS > now_ms:
        frac = (now_ms - int(c.ts[-1])) / MINUTE_MS
        i = len(c) - 1
        fields = {name: getattr(c, name).copy() for name in _FIELDS}
        o, cl = int(c.open[i]), int(c.close[i])
        fields["close"][i] = o + round((cl - o) * frac)
        for name in ("volume", "trades", "taker_base"):
            fields[name][i] = int(fields[name][i] * frac)
        vwap = (c.open[i] + c.high[i] + c.low[i] + fields["close"][i]) // 4
        fields["quote_volume"][i] = fields["volume"][i] * vwap
        fields["taker_quote"][i] = fields["taker_base"][i] * vwap
        c = Candles(**fields)
    return c


def candles(
    seed: int, listing: Listing, bar: Bar, start_ms: int, end_ms: int, now_ms: int
) -> Candles:
    """Candles with open time in [start_ms, end_ms) that exist at wall-clock ``now_ms``.

    Closed buckets are exact aggregates of the 1m candles; the bucket containing ``now_ms`` is
    built from the minutes up to ``now_ms`` (the current minute pro rata).
    """
    end_ms = min(end_ms, now_ms + 1)
    if end_ms <= start_ms:
        return EMPTY
    if bar.intraday:
        return _intraday(seed, listing, bar, start_ms, end_ms, now_ms)
    day_bar = Bar(DAY_MS, bar.offset_ms % DAY_MS)
    lo = bar.floor(start_ms)
    hi = bar.next_open(bar.floor(end_ms - 1))
    days = _intraday(seed, listing, day_bar, lo, hi, now_ms)
    if bar.months:
        out = aggregate_months(days, bar.offset_ms)
        if bar.months > 1 and len(out):
            bucket = np.array([bar.floor(int(t)) for t in out.ts], dtype=np.int64)
            distinct = bucket[np.r_[True, bucket[1:] != bucket[:-1]]]
            out = aggregate(out, bucket, distinct)
    else:
        out = aggregate_fixed(days, bar.length_ms, bar.offset_ms)
    return out.take((out.ts >= start_ms) & (out.ts < end_ms))


def _intraday(
    seed: int, listing: Listing, bar: Bar, start_ms: int, end_ms: int, now_ms: int
) -> Candles:
    parts = []
    for window in windows(listing, bar, start_ms, end_ms):
        chunk = window_candles(seed, listing, bar, window, now_ms)
        lo = bar.window_start(window)
        if lo < start_ms or lo + DAY_MS > end_ms:
            chunk = chunk.take((chunk.ts >= start_ms) & (chunk.ts < end_ms))
        if len(chunk):
            parts.append(chunk)
    return Candles.concat(parts)


def windows(listing: Listing, bar: Bar, start_ms: int, end_ms: int) -> range:
    """The day-long windows of an intraday bar that hold its candles opening in [start, end)."""
    off = bar.offset_ms % bar.length_ms
    first = max(bar.floor(start_ms), bar.floor(listing.listed_ms))
    if first >= end_ms:
        return range(0)
    return range((first - off) // DAY_MS, (end_ms - 1 - off) // DAY_MS + 1)


def window_candles(seed: int, listing: Listing, bar: Bar, window: int, now_ms: int) -> Candles:
    """Candles of one window of an intraday bar as of ``now_ms`` (cut at now while it is open)."""
    lo = bar.window_start(window)
    if lo + DAY_MS <= now_ms:
        if bar.length_ms == MINUTE_MS:
            return cached_minutes(seed, listing, lo, lo + DAY_MS)
        return _window(seed, listing, bar, window)
    minutes = _partial(cached_minutes(seed, listing, lo, lo + DAY_MS), now_ms)
    if bar.length_ms == MINUTE_MS:
        return minutes
    return aggregate_fixed(minutes, bar.length_ms, bar.offset_ms % bar.length_ms)


# --------------------------------------------------------------------------- funding


@dataclass(frozen=True)
class Funding:
    """Funding events: times (ms), rate (float), interval hours and mark price (float)."""

    time: np.ndarray
    rate: np.ndarray
    predicted: np.ndarray
    interval_hours: np.ndarray
    mark: np.ndarray

    def __len__(self) -> int:
        return len(self.time)


def funding_times(listing: Listing, start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Funding times in [start_ms, end_ms) and their interval hours, following the schedule."""
    times: list[np.ndarray] = []
    hours: list[np.ndarray] = []
    if listing.delisted_ms is not None:
        end_ms = min(end_ms, listing.delisted_ms)
    segments = listing.funding
    for i, (seg_start, interval_h) in enumerate(segments):
        seg_end = segments[i + 1][0] if i + 1 < len(segments) else end_ms
        lo, hi = max(seg_start, start_ms), min(seg_end, end_ms)
        step = interval_h * 3_600_000
        first = -(-lo // step) * step
        if first < hi:
            t = np.arange(first, hi, step, dtype=np.int64)
            times.append(t)
            hours.append(np.full(len(t), interval_h, dtype=np.int64))
    if not times:
        return _I64, _I64
    return np.concatenate(times), np.concatenate(hours)


def funding(seed: int, listing: Listing, start_ms: int, end_ms: int) -> Funding:
    """Funding events with funding time in [start_ms, end_ms)."""
    t, hours = funding_times(listing, start_ms, end_ms)
    key = stable_key(seed, "funding", listing.exchange, listing.base)
    slow = np.sin(2 * np.pi * t / (23 * DAY_MS) + (key % 628) / 100)
    rate = 0.0001 * hours / 8 + 0.00012 * slow + 0.00008 * normal(key, t // 3_600_000)
    rate = np.clip(rate, -0.003, 0.003)
    predicted = rate * (1 + 0.02 * normal(key ^ 9, t // 3_600_000))
    mark = price(seed, listing, t // MINUTE_MS) if len(t) else np.zeros(0)
    return Funding(t, rate, predicted, hours, mark)


# --------------------------------------------------------------------------- open interest


def open_interest(
    seed: int, listing: Listing, times_ms: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(open interest in base units, mark price) at each time."""
    if len(times_ms) == 0:
        return np.zeros(0), np.zeros(0)
    k = times_ms // MINUTE_MS
    key = stable_key(seed, "oi", listing.exchange, listing.base)
    level = 0.25 * np.sin(2 * np.pi * k / (61 * 1440) + (key % 628) / 100)
    for spacing, amp in ((5, 0.002), (60, 0.01), (720, 0.03), (8640, 0.08)):
        level = level + amp * _value_noise(key ^ spacing, k, spacing)
    factor = _VOLUME_FACTOR.get((listing.exchange, listing.kind), 1.0) / 3.0
    oi = listing.asset.open_interest * factor * np.exp(level)
    return oi, price(seed, listing, k)


# --------------------------------------------------------------------------- 24h tickers


@dataclass(frozen=True)
class Turnover:
    """A listing's rolling 24 h figures as a ticker endpoint reports them."""

    open: float
    last: float
    volume: float  # base units
    quote_volume: float


def turnover(seed: int, listing: Listing, now_ms: int, trading: bool) -> Turnover:
    """Rolling 24 h open, last price and volumes at `now_ms` (a model, not a sum of candles:
    the typical daily volume of the venue times a hashed factor per hour, zero for a listing
    not trading). Cheap enough for hundreds of listings per request."""
    minute = now_ms // MINUTE_MS
    p = price(seed, listing, np.array([minute - MINUTES_PER_DAY, minute], dtype=np.int64))
    if not trading:
        return Turnover(float(p[1]), float(p[1]), 0.0, 0.0)
    factor = _VOLUME_FACTOR.get((listing.exchange, listing.kind), 1.0)
    if listing.exchange == "coinbase" and listing.quote == "USDT":
        factor *= 0.05
    key = stable_key(seed, "turnover", listing.exchange, listing.kind, listing.native)
    noise = 0.7 + 0.6 * float(uniform(key, np.array([now_ms // 3_600_000]))[0])
    volume = listing.asset.minute_volume * MINUTES_PER_DAY * factor * noise
    return Turnover(float(p[0]), float(p[1]), volume, volume * float(p.mean()))
