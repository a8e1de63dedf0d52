"""Offline sandbox exchange: Binance (spot + USD-M), Coinbase Exchange and OKX public REST APIs.

One aiohttp app serves every endpoint at its real path (``/api/v3``, ``/fapi/v1``,
``/futures/data``, ``/products``, ``/api/v5``) with the real parameters, limits, ordering,
envelopes, error bodies and rate-limit headers; ``/__sandbox__/stats`` (GET) and
``/__sandbox__/reset`` (POST) are the control endpoints.

``SandboxServer(SandboxConfig(...))`` runs it in a background thread on an ephemeral port for
tests, ``SandboxProcess`` in a child process (benchmarks), ``serve()`` in the foreground for the
``crypto-pipeline sandbox`` command.

Facts tests can rely on (any seed):

* Data is a pure function of (seed, exchange, market, time): every request window agrees on
  shared rows, and coarser candles are exact aggregates of the 1m candles.
* Binance has a maintenance gap on 2024-02-29 03:00-03:30 UTC (30 missing minutes, spot and
  perp), OKX on 2024-07-15 06:00-06:12, Coinbase on 2024-11-05 14:20-14:28; other seeded gaps
  hit about 1 day in 100 per exchange (``market.gap_days``).
* ENAUSDT (spot and perp) is listed on Binance and OKX from 2024-04-02 08:00 UTC; BNB and ENA are
  not listed on Coinbase, which lists X-USD and X-USDT products; other listing dates are in
  ``catalog``.
* SOLUSDT perpetual funding is every 8 h before 2024-06-01 and every 4 h from then on (Binance and
  OKX); ENAUSDT funds every 4 h; the other perpetuals every 8 h.
* Coinbase USDT products skip about 0.3 % of minutes (no trades, no candle).
* The candle containing the wall clock is served unfinished (Binance closeTime >= now, OKX
  confirm "0", volume pro rata).
"""

from sandbox.config import SandboxConfig
from sandbox.server import (
    SandboxProcess,
    SandboxServer,
    add_sandbox_arguments,
    config_from_args,
    create_app,
    serve,
)

__all__ = [
    "SandboxConfig",
    "SandboxProcess",
    "SandboxServer",
    "add_sandbox_arguments",
    "config_from_args",
    "create_app",
    "serve",
]
