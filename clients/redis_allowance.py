"""The rate-limit allowance kept in Redis, shared by every process that uses the same Redis.

Each window is a sorted set of requests scored by the earliest moment they leave it, plus a
hash with their total cost; each script runs atomically on Redis' own clock, so processes on
several hosts agree. A request's slot is taken at send, scored `send + span` (its lease: a
killed holder frees it one window later), and rescored `answer + span` when the answer is in,
as `SlidingWindow` does in one process. A token bucket is one GCRA timestamp. The exchange's
pause (429/418/403) is one key with a TTL that every script checks.
"""

from __future__ import annotations

import asyncio
import logging
import math
import weakref
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from clients.allowance import AllowanceBackend, AsyncLimiter, LimiterKey, Ticket, unavailable
from clients.ratelimit import LimitSpec

log = logging.getLogger(__name__)

KEY_PREFIX = "crypto-pipeline:allowance"
CONNECT_TIMEOUT = 2.0
# Shortest sleep between two tries of a full window (clock granularity of the scores).
_MIN_WAIT = 0.001

_COMMON = """
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function cost_of(member)
  return tonumber(string.match(member, ':([^:]+)$'))
end
local function purge(zset, meta, t)
  local total = tonumber(redis.call('HGET', meta, 'total') or '0')
  local gone = redis.call('ZRANGEBYSCORE', zset, '-inf', t)
  for _, member in ipairs(gone) do total = total - cost_of(member) end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', zset, '-inf', t) end
  if redis.call('ZCARD', zset) == 0 then total = 0 end
  return total
end
local function store(zset, meta, total, ttl)
  redis.call('HSET', meta, 'total', string.format('%.6f', total))
  redis.call('PEXPIRE', zset, ttl)
  redis.call('PEXPIRE', meta, ttl)
end
local function member(meta, t, cost)
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  return string.format('%.6f#%d:%s', t, seq, cost)
end
"""

# KEYS: window, meta, pause. ARGV: cost, capacity, span, ttl ms.
# Returns {ticket, ''} or {'', seconds to wait before trying again}.
ACQUIRE_WINDOW = (
    _COMMON
    + """
local paused = redis.call('PTTL', KEYS[3])
if paused > 0 then return {'', string.format('%.6f', paused / 1000)} end
local t = now()
local total = purge(KEYS[1], KEYS[2], t)
local capacity = tonumber(ARGV[2])
local cost = math.min(tonumber(ARGV[1]), capacity)
if total + cost <= capacity + 1e-6 then
  local ticket = member(KEYS[2], t, cost)
  redis.call('ZADD', KEYS[1], t + tonumber(ARGV[3]), ticket)
  store(KEYS[1], KEYS[2], total + cost, ARGV[4])
  return {ticket, ''}
end
local need = total + cost - capacity
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #entries, 2 do
  need = need - cost_of(entries[i])
  if need <= 1e-6 then
    return {'', string.format('%.6f', tonumber(entries[i + 1]) - t)}
  end
end
return {'', ARGV[3]}
"""
)

# KEYS: window, meta. ARGV: ticket, span, ttl ms. The request leaves the window `span` from now.
RELEASE_WINDOW = (
    _COMMON
    + """
local t = now()
local total = purge(KEYS[1], KEYS[2], t)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then total = total + cost_of(ARGV[1]) end
redis.call('ZADD', KEYS[1], t + tonumber(ARGV[2]), ARGV[1])
store(KEYS[1], KEYS[2], total, ARGV[3])
return 1
"""
)

# KEYS: window, meta. ARGV: used (exchange's counter), span, ttl ms. Books foreign usage.
OBSERVE_WINDOW = (
    _COMMON
    + """
local t = now()
local total = purge(KEYS[1], KEYS[2], t)
local missing = tonumber(ARGV[1]) - total
if missing <= 0 then return '0' end
redis.call('ZADD', KEYS[1], t + tonumber(ARGV[2]), member(KEYS[2], t, missing))
store(KEYS[1], KEYS[2], total + missing, ARGV[3])
return string.format('%.6f', missing)
"""
)

# KEYS: theoretical arrival time, pause. ARGV: cost, interval (1/rate), tolerance.
# Books the earliest send time (GCRA); returns the seconds to wait for it.
ACQUIRE_BUCKET = (
    _COMMON
    + """
local t = now()
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), t)
local at = math.max(t, tat - tonumber(ARGV[3]) - 1e-6)
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then at = math.max(at, t + paused / 1000) end
local next_tat = math.max(tat, at) + tonumber(ARGV[1]) * tonumber(ARGV[2])
local ttl = math.ceil((next_tat - t) * 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.6f', next_tat), 'PX', ttl)
return string.format('%.6f', at - t)
"""
)

# KEYS: pause. ARGV: milliseconds. Extends the pause, never shortens it.
PAUSE = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return redis.call('PTTL', KEYS[1])
"""

SCRIPTS = {
    "acquire_window": ACQUIRE_WINDOW,
    "release_window": RELEASE_WINDOW,
    "observe_window": OBSERVE_WINDOW,
    "acquire_bucket": ACQUIRE_BUCKET,
    "pause": PAUSE,
}


def redact(url: str) -> str:
    """`url` without its password (for logs and messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))


@dataclass
class _Connection:
    client: aioredis.Redis
    scripts: dict[str, AsyncScript]


class RedisAllowance(AllowanceBackend):
    """Windows, buckets and pauses in the Redis at `url` (one connection pool per event loop)."""

    def __init__(self, url: str, *, namespace: str = KEY_PREFIX) -> None:
        self.url = url
        self.namespace = namespace
        self.description = redact(url)
        self._connections: dict[int, tuple[weakref.ref[asyncio.AbstractEventLoop], _Connection]]
        self._connections = {}

    def check(self) -> None:
        """Fail now, naming the setting and URL, if Redis cannot be reached or refuses."""
        try:
            with redis.Redis.from_url(
                self.url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=CONNECT_TIMEOUT
            ) as probe:
                probe.ping()
        except (redis.RedisError, OSError, ValueError) as exc:
            raise unavailable(self.description, _reason(exc)) from None

    def connection(self) -> _Connection:
        """The connection of the running event loop (made on first use)."""
        loop = asyncio.get_running_loop()
        found = self._connections.get(id(loop))
        if found is None or found[0]() is not loop:
            for key, (ref, _) in list(self._connections.items()):
                if ref() is None:  # that loop is gone (its connections went with it)
                    del self._connections[key]
            client = aioredis.Redis.from_url(
                self.url,
                decode_responses=True,
                socket_connect_timeout=CONNECT_TIMEOUT,
                socket_timeout=CONNECT_TIMEOUT * 5,
            )
            scripts = {name: client.register_script(source) for name, source in SCRIPTS.items()}
            found = (weakref.ref(loop), _Connection(client, scripts))
            self._connections[id(loop)] = found
        return found[1]

    async def run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """Run one of `SCRIPTS`; a Redis failure becomes `AllowanceUnavailable`."""
        conn = self.connection()
        try:
            return await conn.scripts[script](keys=keys, args=args)
        except (redis.RedisError, OSError) as exc:
            raise unavailable(self.description, _reason(exc)) from None

    async def pause_left(self, pause_key: str) -> float:
        try:
            ms = await self.connection().client.pttl(pause_key)
        except (redis.RedisError, OSError) as exc:
            raise unavailable(self.description, _reason(exc)) from None
        return max(0.0, int(ms) / 1000)

    async def aclose(self) -> None:
        """Close the running event loop's connection."""
        found = self._connections.pop(id(asyncio.get_running_loop()), None)
        if found is not None:
            await found[1].client.aclose()

    def key(self, kind: str, key: LimiterKey) -> str:
        return ":".join((self.namespace, kind, *key))

    def limiter(self, key: LimiterKey, spec: LimitSpec | None, gate: LimiterKey) -> AsyncLimiter:
        pause_key = self.key("pause", gate)
        if spec is None:
            return RedisGate(self, pause_key)
        if spec.kind == "window":
            return RedisWindow(self, self.key("window", key), pause_key, spec)
        return RedisBucket(self, self.key("bucket", key), pause_key, spec)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip().rstrip(":")


class RedisGate(AsyncLimiter):
    """No pacing of its own: waits out the exchange's shared pause."""

    def __init__(self, backend: RedisAllowance, pause_key: str) -> None:
        self.backend = backend
        self.pause_key = pause_key

    async def acquire(self, cost: float = 1.0) -> Ticket:
        while (left := await self.paused_for()) > 0:
            await asyncio.sleep(left)
        return ""

    async def finished(self, ticket: Ticket) -> None:
        return None

    async def pause(self, seconds: float) -> None:
        ms = max(1, math.ceil(seconds * 1000))
        await self.backend.run("pause", [self.pause_key], [ms])

    async def paused_for(self) -> float:
        return await self.backend.pause_left(self.pause_key)


class RedisWindow(RedisGate):
    """At most `spec.limit * spec.budget` cost in any `spec.period + spec.margin` seconds."""

    def __init__(self, backend: RedisAllowance, key: str, pause_key: str, spec: LimitSpec) -> None:
        super().__init__(backend, pause_key)
        self.keys = [key, f"{key}:meta"]
        self.capacity = spec.limit * spec.budget
        self.span = spec.period + spec.margin
        self.ttl_ms = math.ceil((self.span + 1.0) * 1000)

    async def acquire(self, cost: float = 1.0) -> Ticket:
        args = [cost, self.capacity, self.span, self.ttl_ms]
        while True:
            ticket, wait = await self.backend.run(
                "acquire_window", [*self.keys, self.pause_key], args
            )
            if ticket:
                return str(ticket)
            await asyncio.sleep(max(float(wait), _MIN_WAIT))

    async def finished(self, ticket: Ticket) -> None:
        if not ticket:
            return
        try:
            await self.backend.run("release_window", self.keys, [ticket, self.span, self.ttl_ms])
        except Exception as exc:  # the lease frees the slot one window after its send
            log.warning("could not release a rate-limit slot: %s", exc)

    async def observe_used(self, used: float) -> None:
        await self.backend.run("observe_window", self.keys, [used, self.span, self.ttl_ms])


class RedisBucket(RedisGate):
    """`spec.limit` requests per second with bursts of `spec.period` (GCRA), booked in Redis."""

    def __init__(self, backend: RedisAllowance, key: str, pause_key: str, spec: LimitSpec) -> None:
        super().__init__(backend, pause_key)
        self.key = key
        self.interval = 1.0 / spec.limit
        self.tolerance = (spec.period - 1) * self.interval

    async def acquire(self, cost: float = 1.0) -> Ticket:
        args = [cost, self.interval, self.tolerance]
        wait = await self.backend.run("acquire_bucket", [self.key, self.pause_key], args)
        if float(wait) > 0:
            await asyncio.sleep(float(wait))
        return ""
