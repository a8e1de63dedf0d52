"""Build exchange clients for the live exchanges or a sandbox (only base URLs differ)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from clients.allowance import AllowanceBackend
from clients.allowance_choice import allowance_backend
from clients.base import BaseClient, RetryPolicy
from clients.binance import BinanceClient
from clients.binance_archive import ARCHIVE_URL
from clients.coinbase import CoinbaseClient
from clients.okx import OkxClient
from clients.protocol import ExchangeClient
from models.enums import Exchange

CLIENTS: dict[Exchange, type[BaseClient]] = {
    Exchange.BINANCE: BinanceClient,
    Exchange.COINBASE: CoinbaseClient,
    Exchange.OKX: OkxClient,
}


def make_client(
    exchange: Exchange,
    *,
    sandbox_url: str | None = None,
    session: aiohttp.ClientSession | None = None,
    rate_limits: bool = True,
    retry: RetryPolicy | None = None,
    rate_limit_scale: float = 1.0,
    allowance: str | AllowanceBackend | None = None,
    allowance_fallback_processes: int = 0,
    binance_source: str = "rest",
    archive_url: str | None = None,
) -> BaseClient:
    """A client for `exchange`; with `sandbox_url` every exchange host is replaced by it.

    The client implements `clients.protocol.ExchangeClient` and also offers
    `supported_intervals`, `history_depth(dataset)` and `async with`.

    `rate_limits=False` turns client-side pacing off (benchmarks against a sandbox with limits
    off); `rate_limit_scale` scales every allowance (a sandbox run with scaled limits).

    `allowance` is where the allowance is kept (`CRYPTO_PIPELINE_ALLOWANCE`): `local` (default,
    this process), `local/N` (1/N of it per process) or a Redis URL shared by every process
    (see `clients.allowance_choice.allowance_backend`; an unreachable Redis raises
    `AllowanceUnavailable` unless `allowance_fallback_processes` > 0 picks `local/N`).

    Binance only: `binance_source` picks where history comes from: `rest` (the default of a
    bare client), `auto` or `archive` (the pipeline passes `Settings.binance_source`,
    `CRYPTO_PIPELINE_BINANCE_SOURCE`, default `auto`); `archive_url` the archive's base URL (default
    data.binance.vision, or `sandbox_url`, which serves the archive at the real paths).
    """
    cls = CLIENTS[Exchange(exchange)]
    base_urls = None
    if sandbox_url:
        root = sandbox_url.rstrip("/")
        base_urls = dict.fromkeys(cls.hosts, root)
    extra: dict[str, Any] = {}
    if cls is BinanceClient:
        served = sandbox_url.rstrip("/") if sandbox_url else ARCHIVE_URL
        extra = {"source": binance_source, "archive_url": archive_url or served}
    return cls(
        base_urls=base_urls,
        session=session,
        rate_limits=rate_limits,
        retry=retry,
        rate_limit_scale=rate_limit_scale,
        allowance=allowance_backend(allowance, fallback_processes=allowance_fallback_processes),
        **extra,
    )


@asynccontextmanager
async def open_clients(
    exchanges: Iterable[Exchange],
    sandbox_url: str | None = None,
    *,
    rate_limits: bool = True,
    retry: RetryPolicy | None = None,
    allowance: str | AllowanceBackend | None = None,
    binance_source: str = "rest",
    archive_url: str | None = None,
) -> AsyncIterator[dict[Exchange, BaseClient]]:
    """Clients for several exchanges on one shared session, closed on exit."""
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=(retry or RetryPolicy()).timeout),
        connector=aiohttp.TCPConnector(limit=64),
    ) as session:
        clients = {
            Exchange(ex): make_client(
                Exchange(ex),
                sandbox_url=sandbox_url,
                session=session,
                rate_limits=rate_limits,
                retry=retry,
                allowance=allowance,
                binance_source=binance_source,
                archive_url=archive_url,
            )
            for ex in exchanges
        }
        try:
            yield clients
        finally:
            for client in clients.values():
                await client.aclose()


def _check_protocol(client: BaseClient) -> ExchangeClient:
    """Static proof that every client satisfies the shared protocol."""
    return client
