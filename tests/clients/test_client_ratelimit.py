"""Rate limiters on a fake clock: allowance respected in every window, close to fully used."""

from __future__ import annotations

import asyncio
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from clients.coinbase import PUBLIC_LIMIT
from clients.ratelimit import LimitSpec, SlidingWindow, TokenBucket, Unlimited, shared_limiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


def max_in_any_window(times: list[tuple[float, float]], window: float) -> float:
    """Largest total cost in any half-open window (t - window, t] ending at a booking."""
    worst = 0.0
    for i, (t, _) in enumerate(times):
        worst = max(worst, sum(c for u, c in times[: i + 1] if u > t - window))
    return worst


def test_sliding_window_never_exceeds_and_uses_the_allowance() -> None:
    clock = FakeClock()
    limiter = SlidingWindow(20, 2.0, margin=0.1, clock=clock, sleep=clock.sleep)
    booked = [(limiter.reserve(1), 1.0) for _ in range(200)]
    assert max_in_any_window(booked, 2.1) <= 20
    span = booked[-1][0] - booked[0][0]
    # 200 requests at 20 per 2.1 s take ~19 windows: at least 90 % of the 10 req/s allowance.
    assert 200 / (span + 2.1) >= 0.9 * 10 * 2.0 / 2.1


@settings(max_examples=60, deadline=None)
@given(
    costs=st.lists(st.integers(0, 40), min_size=1, max_size=120),
    gaps=st.lists(st.floats(0, 3), min_size=1, max_size=120),
)
def test_sliding_window_property_weights(costs: list[int], gaps: list[float]) -> None:
    clock = FakeClock()
    limiter = SlidingWindow(100, 60.0, margin=0.5, budget=0.97, clock=clock, sleep=clock.sleep)
    booked = []
    for i, cost in enumerate(costs):
        clock.now += gaps[i % len(gaps)]
        at = limiter.reserve(cost)
        assert at >= clock.now
        booked.append((at, float(cost)))
    assert [t for t, _ in booked] == sorted(t for t, _ in booked)
    assert max_in_any_window(booked, 60.5) <= 97 + 1e-9


def test_token_bucket_burst_then_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, 15, clock=clock, sleep=clock.sleep)
    times = [bucket.reserve() for _ in range(45)]
    assert all(t == clock.now for t in times[:15])
    assert times[15] > clock.now
    # After the burst, one request every 0.1 s.
    assert abs((times[44] - times[15]) - 29 * 0.1) < 1e-9


COINBASE_PUBLIC = (PUBLIC_LIMIT.limit, PUBLIC_LIMIT.period)  # rate, burst


def _refused(arrivals: list[float], rate: float = 10.0, burst: float = 15.0) -> int:
    """How many of the arrivals a server-side token bucket (Coinbase: 10/s, 15) refuses."""
    tokens, stamp, refused = burst, min(arrivals), 0
    for t in sorted(arrivals):
        tokens = min(burst, tokens + (t - stamp) * rate)
        stamp = t
        if tokens < 1:
            refused += 1
        else:
            tokens -= 1
    return refused


def test_token_bucket_matches_a_server_side_bucket() -> None:
    """Replay bookings against the server's bucket model (10/s, burst 15): never refused."""
    clock = FakeClock()
    ours = TokenBucket(*COINBASE_PUBLIC, clock=clock, sleep=clock.sleep)
    times = [ours.reserve() for _ in range(300)]
    assert _refused(times) == 0
    assert 300 / (times[-1] - times[0]) >= 9.0


def _bunched(booked: list[float], at: float, jitter: float) -> list[float]:
    """The worst arrival times within `jitter`: every request booked in [at - jitter, at]
    reaches the exchange at `at` (held back behind a stall), the others on time."""
    return [at if at - jitter <= t <= at else t for t in booked]


def _worst_refusals(rate: float, burst: float, jitter: float) -> int:
    clock = FakeClock()
    bucket = TokenBucket(rate, burst, clock=clock, sleep=clock.sleep)
    booked = [bucket.reserve() for _ in range(120)]
    start = booked[0]
    return max(_refused(_bunched(booked, start + i * 0.01, jitter)) for i in range(1300))


def test_coinbase_bookings_survive_arrivals_bunched_by_a_stall() -> None:
    """Requests held back up to 0.35 s and then arriving together are never refused by the
    exchange's bucket with the client's burst; the burst it used before (14) is."""
    assert _worst_refusals(*COINBASE_PUBLIC, jitter=0.35) == 0
    assert _worst_refusals(9.5, 14, jitter=0.35) > 0  # so the line above can fail


async def test_acquire_sleeps_until_the_booking() -> None:
    clock = FakeClock()
    limiter = SlidingWindow(2, 1.0, margin=0.0, clock=clock, sleep=clock.sleep)
    start = clock.now
    for _ in range(5):
        limiter.finished(await limiter.acquire())  # answered at once
    assert abs(clock.now - start - 2.0) < 1e-3


async def test_pause_holds_every_request() -> None:
    clock = FakeClock()
    limiter = SlidingWindow(100, 1.0, clock=clock, sleep=clock.sleep)
    limiter.pause(5.0)
    await limiter.acquire()
    assert clock.now >= 1_005.0
    unlimited = Unlimited(clock=clock, sleep=clock.sleep)
    unlimited.pause(1.0)
    await unlimited.acquire()
    assert clock.now >= 1_006.0


def test_observe_used_books_foreign_usage() -> None:
    clock = FakeClock()
    limiter = SlidingWindow(100, 60.0, margin=0.0, clock=clock, sleep=clock.sleep)
    limiter.reserve(10)
    limiter.observe_used(90)  # the exchange counted 80 more than we sent
    assert limiter.used() == 90
    assert limiter.reserve(20) >= clock.now + 60.0
    limiter.observe_used(5)  # lower counts never lower our accounting
    assert limiter.used() == 110


def test_shared_registry_is_process_wide_and_thread_safe() -> None:
    spec = LimitSpec("window", 10, 1.0)
    key = ("test-exchange", "bucket", "http://127.0.0.1:1")
    seen: list[object] = []

    def grab() -> None:
        seen.append(shared_limiter(key, spec))

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(s is seen[0] for s in seen)
    assert shared_limiter(key, None) is not seen[0]
    assert isinstance(shared_limiter(key, None), Unlimited)


def test_scaled_spec() -> None:
    assert LimitSpec("window", 6000, 60.0).scaled(0.01).limit == 60
    bucket = LimitSpec("bucket", 10, 15).scaled(0.5)
    assert (bucket.limit, bucket.period) == (5, 7)


async def test_concurrent_acquirers_share_one_allowance() -> None:
    limiter = SlidingWindow(10, 0.5, margin=0.02)
    loop = asyncio.get_running_loop()
    sent: list[float] = []

    async def one() -> None:
        ticket = await limiter.acquire()
        sent.append(loop.time())
        limiter.finished(ticket)

    await asyncio.gather(*(one() for _ in range(25)))
    sent.sort()
    for i, t in enumerate(sent):
        assert sum(1 for u in sent[: i + 1] if u > t - 0.5) <= 10


async def test_late_arrivals_never_overrun_the_exchange_window() -> None:
    """Regression: the exchange counts a request on arrival, which can trail the send by more
    than the margin (busy event loops). The first batch lands 0.1 s late (margin 0.02): a limiter
    that dates requests by their send time books the next batch inside the exchange's window."""
    from sandbox.limits import SlidingWindow as ExchangeWindow

    window = 0.5
    limiter = SlidingWindow(4, window, margin=0.02)
    exchange = ExchangeWindow(4, window)
    loop = asyncio.get_running_loop()
    refused: list[int] = []

    async def one(i: int) -> None:
        ticket = await limiter.acquire()
        await asyncio.sleep(0.1 if i < 4 else 0.0)  # in transit
        if exchange.check("ip", loop.time()).status:
            refused.append(i)
        getattr(limiter, "finished", lambda _: None)(ticket)  # the answer is in

    await asyncio.gather(*(one(i) for i in range(12)))
    assert refused == []
