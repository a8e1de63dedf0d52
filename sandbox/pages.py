"""Candle pages as JSON text: rows encoded once per closed day-long window, then sliced.

Once a window of an intraday bar has closed, its rows are a pure function of (seed, listing,
bar, window, row format), so they are encoded once (the endpoint's row builder, then orjson) and
kept in a bounded LRU cache; a page joins slices of those texts. The window holding the wall
clock is built per request and only for the rows served, so it is never stale. Bars longer than
a day (``3d``, weeks, months) are aggregated per request, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import orjson

from sandbox import market
from sandbox.common import backward, forward
from sandbox.listing import DAY_MS, Listing
from sandbox.market import Bar, Candles

# A day of 1m Binance klines is ~250 kB of JSON, so the cache stays under ~70 MB.
CACHED_WINDOWS = 256

Keep = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class RowFormat:
    """An endpoint's candle rows, oldest first: ``rows(listing, bar, candles, now_ms)``.

    Each row must be a flat JSON array of numbers and numeric strings (rows are split on "[").
    ``newest_first`` endpoints serve them in reverse.
    """

    rows: Callable[[Listing, Bar, Candles, int], list[Any]]
    newest_first: bool = False


@dataclass(frozen=True)
class Block:
    """Encoded rows of ascending candles: JSON joined by commas, in serving order."""

    ts: np.ndarray  # open times, ascending
    text: bytes
    starts: np.ndarray  # offset of each row in ``text`` (serving order), then len(text) + 1
    newest_first: bool

    def rows(self, i: int, j: int) -> bytes:
        """The JSON of candles ``i`` to ``j - 1`` (ascending positions), in serving order."""
        if self.newest_first:
            i, j = len(self.ts) - j, len(self.ts) - i
        return self.text[self.starts[i] : self.starts[j] - 1]


Source = Block | Candles  # a closed window's cached rows, or the open window's candles
Span = tuple[Source, int, int]  # rows [i, j) of a source


def encode(fmt: RowFormat, listing: Listing, bar: Bar, c: Candles, now_ms: int) -> Block:
    """The rows of candles ``c`` as a :class:`Block`."""
    rows = fmt.rows(listing, bar, c, now_ms)
    if fmt.newest_first:
        rows.reverse()
    text = orjson.dumps(rows)[1:-1]
    starts = np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == ord("["))
    return Block(c.ts, text, np.append(starts, len(text) + 1), fmt.newest_first)


@lru_cache(maxsize=CACHED_WINDOWS)
def _closed(seed: int, listing: Listing, bar: Bar, window: int, fmt: RowFormat) -> Block:
    """A closed window's rows, cached: they no longer depend on the clock."""
    end = bar.window_start(window) + DAY_MS
    return encode(fmt, listing, bar, market.window_candles(seed, listing, bar, window, end), end)


def _sources(
    seed: int, listing: Listing, bar: Bar, fmt: RowFormat, windows: Iterable[int], now_ms: int
) -> Iterator[Source]:
    """Each window's cached rows once it has closed, else its candles so far."""
    for window in windows:
        if bar.window_start(window) + DAY_MS <= now_ms:
            yield _closed(seed, listing, bar, window, fmt)
        else:
            yield market.window_candles(seed, listing, bar, window, now_ms)


def _take(
    sources: Iterable[Source], start_ms: int, end_ms: int, limit: int, last: bool
) -> list[Span]:
    """The first (``last``: final) ``limit`` rows opening in [start_ms, end_ms), ascending.

    ``sources`` run oldest first, or newest first when ``last``; ``limit`` is at least 1.
    """
    spans: list[Span] = []
    count = 0
    for source in sources:
        i, j = np.searchsorted(source.ts, (start_ms, end_ms)).tolist()
        if last:
            i = max(i, j - (limit - count))
        else:
            j = min(j, i + limit - count)
        if i < j:
            spans.append((source, i, j))
            count += j - i
        if count >= limit:
            break
    return spans[::-1] if last else spans


def _kept(spans: list[Span], keep: Keep) -> Iterator[Span]:
    """The spans' runs of rows that ``keep`` lets through."""
    for source, i, j in spans:
        mask = keep(source.ts[i:j])
        if mask.all():
            yield source, i, j
            continue
        edges = np.flatnonzero(np.diff(mask, prepend=False, append=False)).tolist()
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            yield source, i + a, i + b


def page(
    seed: int,
    listing: Listing,
    bar: Bar,
    fmt: RowFormat,
    start_ms: int,
    end_ms: int,
    limit: int,
    now_ms: int,
    *,
    last: bool = False,
    keep: Keep,
) -> orjson.Fragment:
    """The first (``last``: final) ``limit`` candles opening in [start_ms, end_ms) that exist at
    ``now_ms``, less the rows ``keep`` withholds, as a JSON array in serving order.

    The same rows as :func:`~sandbox.common.forward` (``backward``) then ``fmt.rows``.
    """
    if bar.intraday:
        bound = min(end_ms, now_ms + 1)
        windows = market.windows(listing, bar, start_ms, bound)
        sources = _sources(seed, listing, bar, fmt, reversed(windows) if last else windows, now_ms)
        spans = _take(sources, start_ms, bound, limit, last)
    else:
        c = (backward if last else forward)(seed, listing, bar, start_ms, end_ms, limit, now_ms)
        spans = [(c, 0, len(c))]
    parts = []
    for source, i, j in _kept(spans, keep):
        if isinstance(source, Candles):  # the open window (or a long bar): only the rows served
            source, i, j = encode(fmt, listing, bar, source.take(slice(i, j)), now_ms), 0, j - i
        parts.append(source.rows(i, j))
    if fmt.newest_first:
        parts.reverse()
    return orjson.Fragment(b"[" + b",".join(parts) + b"]")
