"""How much of an exchange's allowance a set of requests used (tests and benchmarks)."""

from __future__ import annotations

from collections.abc import Iterable

from clients.ratelimit import LimitSpec


def allowance_utilization(sends: Iterable[tuple[float, float]], allowance: LimitSpec) -> float:
    """Cost of the accepted requests `sends` ((sent at, cost), seconds) over what `allowance`
    (the exchange's own limit, not the client's budget) grants from the first send to the last.

    A window grants `limit` per `period` over the span plus one period (the last window counts
    whole); a token bucket grants its burst plus `rate` per second of the span.
    """
    entries = list(sends)
    if not entries:
        return 0.0
    times = [t for t, _ in entries]
    span = max(times) - min(times)
    used = sum(cost for _, cost in entries)
    if allowance.kind == "window":
        granted = allowance.limit * (span + allowance.period) / allowance.period
    else:
        granted = allowance.period + allowance.limit * span
    return used / granted
