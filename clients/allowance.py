"""Where the clients' rate-limit slots come from: this process, or a store all processes share.

Every bucket of an exchange's allowance is an `AsyncLimiter`: `acquire(cost)` waits for room
and returns a ticket held until `finished(ticket)` (the answer is in), `pause(seconds)` holds
every request to the exchange (429/418, Binance's 403), `observe_used` aligns with the
exchange's usage header. An `AllowanceBackend` hands them out:

* `LocalAllowance`: today's in-process limiters (`clients.ratelimit`); `local/N` gives each of
  N processes behind one address 1/N of every allowance.
* `RedisAllowance` (`clients.redis_allowance`): the same windows in Redis, shared by every
  process and worker that uses the same Redis.

`clients.allowance_choice.allowance_backend(choice)` builds one from the
`CRYPTO_PIPELINE_ALLOWANCE` setting.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from clients.ratelimit import Limiter, LimitSpec, shared_limiter
from models.errors import InputError
from models.settings import ALLOWANCE_ENV

Ticket = int | str
LimiterKey = tuple[str, ...]


class AllowanceUnavailable(InputError):
    """The configured shared allowance cannot be reached (at start, or lost during a run)."""


class AsyncLimiter(ABC):
    """One bucket of an exchange's allowance, as a client draws on it."""

    @abstractmethod
    async def acquire(self, cost: float = 1.0) -> Ticket:
        """Wait until a request of `cost` may be sent; its slot is held until `finished`."""

    @abstractmethod
    async def finished(self, ticket: Ticket) -> None:
        """The request of `ticket` has its answer, failed, or was not sent."""

    @abstractmethod
    async def pause(self, seconds: float) -> None:
        """Hold every request to the exchange for `seconds` (Retry-After of a 429/418)."""

    @abstractmethod
    async def paused_for(self) -> float:
        """Seconds left of the exchange's pause (0 when requests may go)."""

    async def observe_used(self, used: float) -> None:
        """Align with the exchange's own usage counter (e.g. X-MBX-USED-WEIGHT-1M)."""
        return None


class InProcessLimiter(AsyncLimiter):
    """A `clients.ratelimit.Limiter` of this process behind the async interface."""

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter

    async def acquire(self, cost: float = 1.0) -> Ticket:
        return await self.limiter.acquire(cost)

    async def finished(self, ticket: Ticket) -> None:
        self.limiter.finished(int(ticket))

    async def pause(self, seconds: float) -> None:
        self.limiter.pause(seconds)

    async def paused_for(self) -> float:
        return max(0.0, self.limiter.paused_until - self.limiter.clock())

    async def observe_used(self, used: float) -> None:
        self.limiter.observe_used(used)


class AllowanceBackend(ABC):
    """Hands out the limiter of each (exchange, bucket, base URL) key."""

    description: str  # for logs and messages; never holds a password

    @abstractmethod
    def limiter(self, key: LimiterKey, spec: LimitSpec | None, gate: LimiterKey) -> AsyncLimiter:
        """The limiter of `key` (`spec=None`: no pacing); `gate` keys the exchange's pause."""


class LocalAllowance(AllowanceBackend):
    """Limiters of this process; with `processes > 1` each allowance is divided by it."""

    def __init__(self, processes: int = 1) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self.processes = processes
        self.description = "local" if processes == 1 else f"local/{processes}"

    def limiter(self, key: LimiterKey, spec: LimitSpec | None, gate: LimiterKey) -> AsyncLimiter:
        if spec is not None and self.processes > 1:
            spec = spec.scaled(1.0 / self.processes)
            key = (*key, self.description)
        return InProcessLimiter(shared_limiter(key, spec))


def unavailable(description: str, reason: str) -> AllowanceUnavailable:
    """The error for a shared allowance that cannot be used, naming the setting and URL."""
    return AllowanceUnavailable(
        f"{ALLOWANCE_ENV}={description}: the shared rate-limit allowance is unavailable "
        f"({reason}); start it, or set {ALLOWANCE_ENV}=local/N to split the allowance between "
        "N processes"
    )
