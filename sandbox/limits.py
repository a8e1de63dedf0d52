"""Rate limiters as the real exchanges account them (all per client IP; the sandbox has one).

* Binance: request weight per fixed wall-clock minute (6000 spot, 2400 USD-M). Over the limit the
  answer is 429 with ``Retry-After`` (seconds to the next minute). A client that keeps sending in
  the same minute after a 429 is banned: requests refused more than :data:`GRACE_SECONDS` after
  the minute's first 429 (so not merely in flight when it was sent) are violations, the
  :data:`BAN_AFTER`-th violation is answered 418, and every request is refused with 418 until the
  ban ends (2 minutes, doubling with each new ban, at most 3 days).
* OKX: a rolling 2-second request count per endpoint (and instrument where the exchange says so).
* Coinbase: a token bucket, 10 requests/s with bursts up to 15.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

BAN_AFTER = 5
GRACE_SECONDS = 1.0
FIRST_BAN_SECONDS = 120
MAX_BAN_SECONDS = 3 * 86_400


@dataclass(frozen=True)
class Decision:
    """Outcome of a rate-limit check: status 0 means allowed."""

    status: int = 0
    retry_after: int = 0
    used: int = 0
    banned_until_ms: int = 0


ALLOWED = Decision()


class WeightLimiter:
    """Binance-style request weight per fixed minute, with the 429 -> 418 ban escalation."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.window = -1
        self.used = 0
        self.first_refusal = 0.0
        self.violations = 0
        self.ban_until = 0.0
        self.bans = 0

    def current(self, now: float) -> int:
        return self.used if int(now // 60) == self.window else 0

    def record(self, weight: int, now: float) -> None:
        """Account weight without enforcing the limit (rate limits off)."""
        window = int(now // 60)
        if window != self.window:
            self.window, self.used, self.violations, self.first_refusal = window, 0, 0, 0.0
        self.used += weight

    def check(self, weight: int, now: float) -> Decision:
        if now < self.ban_until:
            return self._ban_decision(now)
        window = int(now // 60)
        if window != self.window:
            self.window, self.used, self.violations, self.first_refusal = window, 0, 0, 0.0
        if self.used + weight > self.capacity:
            if not self.first_refusal:
                self.first_refusal = now
            elif now - self.first_refusal >= GRACE_SECONDS:
                self.violations += 1
            if self.violations >= BAN_AFTER:
                self.bans += 1
                seconds = min(FIRST_BAN_SECONDS * 2 ** (self.bans - 1), MAX_BAN_SECONDS)
                self.ban_until = now + seconds
                return self._ban_decision(now)
            retry = max(1, math.ceil((window + 1) * 60 - now))
            return Decision(429, retry, self.used)
        self.used += weight
        return Decision(0, 0, self.used)

    def _ban_decision(self, now: float) -> Decision:
        return Decision(
            418,
            max(1, math.ceil(self.ban_until - now)),
            self.current(now),
            int(self.ban_until * 1000),
        )


class SlidingWindow:
    """At most ``limit`` requests per rolling ``seconds`` per key; refused requests don't count."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self.hits: dict[str, deque[float]] = {}

    def check(self, key: str, now: float) -> Decision:
        hits = self.hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.seconds:
            hits.popleft()
        if len(hits) >= self.limit:
            return Decision(429, max(1, math.ceil(hits[0] + self.seconds - now)), len(hits))
        hits.append(now)
        return Decision(0, 0, len(hits))


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``; one token per request."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp: float | None = None

    def check(self, now: float) -> Decision:
        if self.stamp is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return Decision(429, max(1, math.ceil((1 - self.tokens) / self.rate)))
        self.tokens -= 1
        return ALLOWED
