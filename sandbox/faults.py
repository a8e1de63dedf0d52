"""Seeded fault injection. Faults replace or delay whole answers; they never alter data.

The n-th request to an exchange draws its fault from (seed, exchange, n), so a run with the same
seed and the same request order sees the same faults.

* ``flaky``: about 3 % 5xx, 2 % starts of a 429 burst (2-3 answers, ``Retry-After: 1``),
  0-40 ms added latency.
* ``hostile``: about 6 % 5xx, 4 % 429 bursts (2-4 answers), 3 % connection resets, 3 % truncated
  bodies (status 200, JSON cut in half), 0-80 ms latency and 1 % spikes of 0.3-0.8 s; and on
  Binance about 1 % firewall refusals (HTTP 403 with an HTML page, as its web application
  firewall answers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sandbox.market import stable_key, uniform


@dataclass(frozen=True)
class Profile:
    server_error: float = 0.0
    burst: float = 0.0
    burst_max: int = 0
    reset: float = 0.0
    truncate: float = 0.0
    latency_ms: float = 0.0
    spike: float = 0.0
    spike_ms: tuple[float, float] = (0.0, 0.0)
    firewall: float = 0.0  # Binance only: 403 from the web application firewall


PROFILES: dict[str, Profile] = {
    "none": Profile(),
    "flaky": Profile(server_error=0.03, burst=0.02, burst_max=3, latency_ms=40),
    "hostile": Profile(
        server_error=0.06,
        burst=0.04,
        burst_max=4,
        reset=0.03,
        truncate=0.03,
        latency_ms=80,
        spike=0.01,
        spike_ms=(300, 800),
        firewall=0.01,
    ),
}


@dataclass(frozen=True)
class Fault:
    """What to do to one request: kind is ok | server_error | rate_limit | reset | truncate |
    firewall (Binance only)."""

    kind: str = "ok"
    delay_s: float = 0.0
    variant: int = 0  # picks one of the exchange's server-error answers


class FaultInjector:
    def __init__(self, seed: int, profile: str) -> None:
        self.seed = seed
        self.profile = PROFILES[profile]
        self.count: dict[str, int] = {}
        self.burst_left: dict[str, int] = {}

    @property
    def active(self) -> bool:
        return self.profile != PROFILES["none"]

    def draw(self, exchange: str) -> Fault:
        p = self.profile
        if not self.active:
            return Fault()
        n = self.count.get(exchange, 0)
        self.count[exchange] = n + 1
        key = stable_key(self.seed, "fault", exchange)
        u = uniform(key, np.arange(n * 8, n * 8 + 6, dtype=np.int64))
        delay = float(u[1]) * p.latency_ms / 1000
        variant = int(u[5] * 2)
        if u[2] < p.spike:
            delay += (p.spike_ms[0] + float(u[3]) * (p.spike_ms[1] - p.spike_ms[0])) / 1000
        if self.burst_left.get(exchange, 0) > 0:
            self.burst_left[exchange] -= 1
            return Fault("rate_limit", delay, variant)
        firewall = p.firewall if exchange == "binance" else 0.0
        edges = np.cumsum([p.server_error, p.burst, p.reset, p.truncate, firewall])
        kind = "ok"
        if u[0] < edges[0]:
            kind = "server_error"
        elif u[0] < edges[1]:
            kind = "rate_limit"
            self.burst_left[exchange] = 1 + int(u[4] * (p.burst_max - 1))
        elif u[0] < edges[2]:
            kind = "reset"
        elif u[0] < edges[3]:
            kind = "truncate"
        elif u[0] < edges[4]:
            kind = "firewall"
        return Fault(kind, delay, variant)
