"""Pagination state machines for the exchanges' history endpoints (no HTTP inside).

Each paginator yields the query parameters of its next request (`params()`), takes the
timestamps (epoch ms) of the rows the exchange sent back (`advance(...)`), and says whether
another request is needed (`done`). The caller runs the loop:

    pager = AscendingCursor(start_ms, end_ms, limit=1000)
    while not pager.done:
        page = await fetch(pager.params())
        pager.advance([row_ts(row) for row in page])

Windows are half-open `[start, end)` in epoch milliseconds; callers still filter rows to the
window (exchanges may send rows outside it). Every paginator refuses a page that would make no
progress, so a misbehaving server cannot make it loop forever.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

Params = dict[str, str | int]


class PaginationError(RuntimeError):
    """A page broke the cursor's invariants (no progress, wrong order)."""


class Paginator(ABC):
    """A cursor over one half-open window `[start, end)` of epoch milliseconds."""

    def __init__(self, start: int, end: int, *, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"page limit must be positive, got {limit}")
        self.start = start
        self.end = end
        self.limit = limit
        self.done = start >= end
        self.pages = 0

    @abstractmethod
    def params(self) -> Params:
        """Query parameters of the next request."""

    @abstractmethod
    def advance(self, timestamps: Sequence[int]) -> None:
        """Take the row timestamps of the page just received and move the cursor."""


class AscendingCursor(Paginator):
    """Binance style: `startTime`/`endTime` both inclusive, oldest rows first, `limit` rows.

    The next page starts `step` ms after the newest row received (`step` is the smallest gap
    between rows: the candle interval for klines, 1 ms for irregular series). Stops on an empty
    or short page, or when the cursor passes the window's end.
    """

    def __init__(
        self,
        start: int,
        end: int,
        *,
        limit: int,
        step: int = 1,
        start_key: str = "startTime",
        end_key: str = "endTime",
    ) -> None:
        super().__init__(start, end, limit=limit)
        if step < 1:
            raise ValueError(f"step must be positive, got {step}")
        self.step = step
        self.cursor = start
        self.start_key = start_key
        self.end_key = end_key

    def params(self) -> Params:
        return {self.start_key: self.cursor, self.end_key: self.end - 1, "limit": self.limit}

    def advance(self, timestamps: Sequence[int]) -> None:
        self.pages += 1
        if not timestamps:
            self.done = True
            return
        newest = max(timestamps)
        if newest < self.cursor:
            raise PaginationError(
                f"page ends at {newest}, before the cursor {self.cursor}: no progress"
            )
        self.cursor = newest + self.step
        if len(timestamps) < self.limit or self.cursor >= self.end:
            self.done = True


class DescendingCursor(Paginator):
    """OKX style: `after` (exclusive upper bound) cursor, newest rows first, `limit` rows.

    The first request asks for rows before `end`; each next one for rows before the oldest row
    received. `lower_key` (OKX `before`, exclusive) bounds every request at `start - 1` so the
    last page comes back short.

    Irregular series (`step=None`, e.g. funding) stop on an empty or short page or once `start`
    is reached. Series on a fixed grid (`step`: candle interval) move the cursor back by at
    least `limit` steps per page and stop only at `start`, so a stretch of withheld rows (an
    empty or short page in the middle of the window) cannot end the walk early.
    """

    def __init__(
        self,
        start: int,
        end: int,
        *,
        limit: int,
        step: int | None = None,
        upper_key: str = "after",
        lower_key: str | None = "before",
    ) -> None:
        super().__init__(start, end, limit=limit)
        if step is not None and step < 1:
            raise ValueError(f"step must be positive, got {step}")
        self.step = step
        self.cursor = end
        self.upper_key = upper_key
        self.lower_key = lower_key

    def params(self) -> Params:
        params: Params = {self.upper_key: self.cursor, "limit": self.limit}
        if self.lower_key is not None:
            params[self.lower_key] = self.start - 1
        return params

    def advance(self, timestamps: Sequence[int]) -> None:
        self.pages += 1
        oldest = min(timestamps) if timestamps else None
        if oldest is not None and oldest >= self.cursor:
            raise PaginationError(
                f"page starts at {oldest}, not before the cursor {self.cursor}: no progress"
            )
        if self.step is not None:
            floor = self.cursor - self.limit * self.step
            self.cursor = floor if oldest is None else min(floor, oldest)
            self.done = self.cursor <= self.start
            return
        if oldest is None:
            self.done = True
            return
        self.cursor = oldest
        if len(timestamps) < self.limit or oldest <= self.start:
            self.done = True


@dataclass(frozen=True)
class Window:
    """One request's share `[start, end)` of a larger window, in epoch milliseconds."""

    start: int
    end: int


def first_open(start: int, step: int) -> int:
    """The first multiple of `step` at or after `start` (candle open times are aligned)."""
    return -(-start // step) * step


def plan_windows(
    start: int, end: int, *, step: int, per_request: int, align: bool = True
) -> list[Window]:
    """Split `[start, end)` into consecutive windows of at most `per_request` steps.

    Used where rows are at most one per `step` (candles, fixed-period series), so a window never
    holds more than one page and all windows can be fetched concurrently. With `align` the first
    window starts at the first multiple of `step` (candle open times are aligned).
    """
    if step <= 0 or per_request <= 0:
        raise ValueError("step and per_request must be positive")
    span = step * per_request
    windows: list[Window] = []
    cursor = first_open(start, step) if align else start
    while cursor < end:
        stop = min(cursor + span, end)
        windows.append(Window(cursor, stop))
        cursor += span
    return windows


class CoinbaseWindows(Paginator):
    """Coinbase Exchange candles: one request per window of at most 300 buckets, ISO times.

    The exchange rejects a range of more than 300 buckets and treats `end` as inclusive, so a
    window `[s, s + n·g)` is requested as `start=s`, `end=s + (n-1)·g`. Windows run newest first
    (the exchange's own order); nothing depends on a page's content, so all windows can also be
    planned up front with `windows()` and fetched concurrently.
    """

    max_buckets = 300

    def __init__(self, start: int, end: int, *, granularity_ms: int, buckets: int = 300) -> None:
        if not 1 <= buckets <= self.max_buckets:
            raise ValueError(f"buckets must be in 1..{self.max_buckets}, got {buckets}")
        super().__init__(start, end, limit=buckets)
        self.granularity_ms = granularity_ms
        self._pending = plan_windows(start, end, step=granularity_ms, per_request=buckets)[::-1]
        self.done = not self._pending

    def windows(self) -> list[Window]:
        """Every window still to fetch, newest first."""
        return list(self._pending)

    def params(self) -> Params:
        return window_params(self._pending[0], self.granularity_ms)

    def advance(self, timestamps: Sequence[int]) -> None:
        self.pages += 1
        self._pending.pop(0)
        self.done = not self._pending


def window_params(window: Window, granularity_ms: int) -> Params:
    """Coinbase query for one window (inclusive ISO `end` on the last bucket's open time)."""
    last = window.start + max(0, (window.end - 1 - window.start) // granularity_ms) * granularity_ms
    return {
        "granularity": granularity_ms // 1000,
        "start": iso_ms(window.start),
        "end": iso_ms(last),
    }


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC with milliseconds, e.g. 2024-01-01T00:00:00.000Z."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
