"""Client-side rate limiting by each exchange's own accounting.

Limiters hand out *reservations*: `reserve(cost)` books the earliest moment a request of that
cost fits the allowance and returns it; `acquire(cost)` sleeps until then and returns a ticket
that the sender hands back with `finished(ticket)` once the response (or the failure) is in.
Booking happens under a thread lock with no awaits, so one limiter can be shared by every client
instance, task and event loop of the process (see `shared_limiter`). A 429 pauses the whole
limiter (`pause`). Processes that share one address share one allowance through
`clients.allowance` (Redis) instead.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

Clock = Callable[[], float]
# Float slack so that a booking lands strictly after the entry leaving the window.
_EPSILON = 1e-6
# How often a sender waiting only for in-flight answers looks again.
_POLL = 0.005
Sleep = Callable[[float], Awaitable[None]]


class Limiter(ABC):
    """Interface shared by the limiters below."""

    name: str = "limiter"

    def __init__(self, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self.clock = clock
        self.sleep = sleep
        self.paused_until = 0.0
        self._lock = threading.Lock()

    @abstractmethod
    def reserve(self, cost: float = 1.0) -> float:
        """Book a request of `cost`; return the clock time at which it may be sent."""

    async def acquire(self, cost: float = 1.0) -> int:
        """Wait until a request of `cost` may be sent; return its ticket for `finished`."""
        while True:
            at = self.reserve(cost)
            delay = at - self.clock()
            if delay > 0:
                await self.sleep(delay)
            if self.clock() >= self.paused_until:
                return 0
            # A 429 paused the limiter while waiting: the old booking stays (conservative).

    def finished(self, ticket: int) -> None:
        """The request of `ticket` (from `acquire`) has its answer, or failed, or was not sent."""
        return None  # windows that hold slots until the answer override this

    def pause(self, seconds: float) -> None:
        """Hold every request to this limiter for `seconds` (Retry-After of a 429/418)."""
        with self._lock:
            self.paused_until = max(self.paused_until, self.clock() + seconds)

    def observe_used(self, used: float) -> None:
        """Align with the exchange's own usage counter (e.g. X-MBX-USED-WEIGHT-1M)."""
        return None  # only weight windows track the exchange's counter


class Unlimited(Limiter):
    """No pacing (benchmarks against a sandbox with limits off); 429 pauses still apply."""

    name = "unlimited"

    def reserve(self, cost: float = 1.0) -> float:
        with self._lock:
            return max(self.clock(), self.paused_until)


class SlidingWindow(Limiter):
    """At most `limit` cost units in any window of `window` seconds.

    The exchange counts a request when it *arrives*, which is somewhere between our send and
    our receipt of the answer; how late depends on the network and on how busy both event loops
    are, so no fixed margin on the send time is safe. A request therefore holds its cost from
    the moment it is sent (`acquire`) until `window + margin` after its answer came back
    (`finished`): the exchange's count of it has surely left its window by then. `reserve`
    books future slots from what is known (in-flight requests as if answered now); `acquire`
    re-checks the booking against the sent requests when it wakes, since an answer may have come
    later than assumed, and books again if it no longer fits. `margin` is extra slack (clock
    granularity), and `budget` (a fraction of the limit) keeps a safety reserve.
    """

    def __init__(
        self,
        limit: float,
        window: float,
        *,
        margin: float = 0.1,
        budget: float = 1.0,
        name: str = "sliding-window",
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(clock=clock, sleep=sleep)
        if limit <= 0 or window <= 0:
            raise ValueError("limit and window must be positive")
        self.limit = limit
        self.window = window
        self.span = window + margin
        self.capacity = limit * budget
        self.name = name
        # (time, cost, answered): bookings not yet sent (answered False, time = planned send)
        # and answered requests (time = answer received), in time order.
        self._entries: deque[tuple[float, float, bool]] = deque()
        self._total = 0.0
        self._last = 0.0
        self._in_flight: dict[int, float] = {}  # ticket -> cost of a sent, unanswered request
        self._flying = 0.0
        self._tickets = 0

    def _expire(self, now: float) -> None:
        while self._entries and self._entries[0][0] <= now - self.span:
            _, cost, _ = self._entries.popleft()
            self._total -= cost

    def reserve(self, cost: float = 1.0) -> float:
        cost = min(cost, self.capacity)
        with self._lock:
            now = self.clock()
            self._expire(now)
            at = max(now, self._last, self.paused_until)
            total = self._total + self._flying
            # In-flight requests leave the window `span` after their answer: assume it is now.
            timeline = [(now, c) for c in self._in_flight.values()]
            timeline += [(t, c) for t, c, _ in self._entries]
            timeline.sort(key=lambda entry: entry[0])
            # Wait for the oldest entries to leave until the cost fits.
            for booked_at, booked_cost in timeline:
                in_window = booked_at > at - self.span
                if in_window and total + cost <= self.capacity:
                    break
                if in_window:
                    at = booked_at + self.span + _EPSILON
                total -= booked_cost
            self._entries.append((at, cost, False))
            self._total += cost
            self._last = at
            return at

    async def acquire(self, cost: float = 1.0) -> int:
        while True:
            at = self.reserve(cost)
            delay = at - self.clock()
            if delay > 0:
                await self.sleep(delay)
            if self.clock() < self.paused_until:
                continue  # a 429 paused the limiter meanwhile: the old booking stays
            ticket, retry_at = self._send(at, cost)
            while not ticket:
                # An answer came later than the booking assumed: wait for the room it needs.
                await self.sleep(max(retry_at - self.clock(), 0.0))
                ticket, retry_at = self._send(None, cost)
            return ticket

    def _send(self, booked_at: float | None, cost: float) -> tuple[int, float]:
        """Turn the booking into an in-flight request if it fits now, else (0, when to retry)."""
        cost = min(cost, self.capacity)
        with self._lock:
            now = self.clock()
            self._expire(now)
            if booked_at is not None:
                try:
                    self._entries.remove((booked_at, cost, False))
                    self._total -= cost
                except ValueError:  # expired while its sender slept
                    pass
            answered = [(t, c) for t, c, done in self._entries if done]
            used = self._flying + sum(c for _, c in answered)
            if used + cost > self.capacity + _EPSILON:
                retry_at = now + _POLL  # only in-flight answers can make room
                for t, c in answered:
                    used -= c
                    if used + cost <= self.capacity + _EPSILON:
                        retry_at = t + self.span + _EPSILON
                        break
                return 0, max(retry_at, self.paused_until)
            self._tickets += 1
            self._in_flight[self._tickets] = cost
            self._flying += cost
            return self._tickets, now

    def finished(self, ticket: int) -> None:
        """The answer is in: the request leaves the window `span` from now."""
        with self._lock:
            cost = self._in_flight.pop(ticket, None)
            if cost is None:
                return
            self._flying -= cost
            bisect.insort(self._entries, (self.clock(), cost, True))
            self._total += cost

    def used(self) -> float:
        """Cost in the window ending now: answered, in flight and booked but not yet sent."""
        with self._lock:
            self._expire(self.clock())
            return self._total + self._flying

    def observe_used(self, used: float) -> None:
        with self._lock:
            now = self.clock()
            self._expire(now)
            past = self._flying + sum(c for t, c, _ in self._entries if t <= now)
            missing = used - past
            if missing > 0:
                # Someone else (another process) spends this allowance: book it as of now.
                at = max(now, self._last)
                self._entries.append((at, missing, True))
                self._total += missing
                self._last = at


class TokenBucket(Limiter):
    """`rate` requests per second with bursts of `burst` (GCRA form of a token bucket)."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        name: str = "token-bucket",
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(clock=clock, sleep=sleep)
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self.name = name
        self._tat = 0.0  # theoretical arrival time of the next request

    def reserve(self, cost: float = 1.0) -> float:
        interval = 1.0 / self.rate
        tolerance = (self.burst - 1) * interval
        with self._lock:
            now = self.clock()
            tat = max(self._tat, now)
            at = max(now, tat - tolerance - _EPSILON, self.paused_until)
            self._tat = max(tat, at) + cost * interval
            return at


@dataclass(frozen=True)
class LimitSpec:
    """How one exchange bucket is limited: a sliding window or a token bucket."""

    kind: str  # "window" | "bucket"
    limit: float  # window: cost per window; bucket: requests per second
    period: float  # window: seconds; bucket: burst size
    margin: float = 0.1
    budget: float = 1.0

    def scaled(self, scale: float) -> LimitSpec:
        """The same limit with its capacity multiplied by `scale` (sandbox tests)."""
        if scale == 1.0:
            return self
        if self.kind == "window":
            return replace(self, limit=max(1.0, math.floor(self.limit * scale)))
        burst = max(1.0, math.floor(self.period * scale))
        return replace(self, limit=self.limit * scale, period=burst)

    def build(self, name: str) -> Limiter:
        if self.kind == "window":
            return SlidingWindow(
                self.limit, self.period, margin=self.margin, budget=self.budget, name=name
            )
        return TokenBucket(self.limit, self.period, name=name)


_REGISTRY: dict[tuple[str, ...], Limiter] = {}
_REGISTRY_LOCK = threading.Lock()


def shared_limiter(key: tuple[str, ...], spec: LimitSpec | None) -> Limiter:
    """The process-wide limiter for `key` (exchange, bucket, base URL...), created on first use.

    `spec=None` gives an `Unlimited` limiter (rate limits off), still shared so that a 429
    pause reaches every client of that exchange.
    """
    full_key = (*key, "off") if spec is None else key
    with _REGISTRY_LOCK:
        limiter = _REGISTRY.get(full_key)
        if limiter is None:
            limiter = Unlimited() if spec is None else spec.build(":".join(key))
            _REGISTRY[full_key] = limiter
        return limiter
