"""What the units of work of one run share: its settings, its warehouse, exchange clients.

Built once where a run starts (a flow, the CLI, a benchmark) and passed down; task bodies
never read settings from the environment.
"""

from __future__ import annotations

import asyncio

from clients.factory import make_client
from clients.protocol import ExchangeClient
from models.enums import Exchange
from models.settings import Settings
from storage import Warehouse


class RunContext:
    """Settings, warehouse and the run's exchange clients (one per exchange and event loop).

    A plain class (Prefect passes it to tasks as is; it rebuilds dataclasses and models).
    """

    def __init__(self, settings: Settings, warehouse: Warehouse | None = None) -> None:
        self.settings = settings
        self.warehouse = warehouse or Warehouse.from_settings(settings)
        self._clients: dict[tuple[Exchange, int], ExchangeClient] = {}
        self._closed: list[tuple[Exchange, ExchangeClient]] = []  # their stats still count

    def __repr__(self) -> str:
        return f"RunContext({self.warehouse.uri!r})"

    def client(self, exchange: Exchange) -> ExchangeClient:
        """The exchange's client (one aiohttp session) for the running event loop, shared by
        every unit of work of the run."""
        key = (exchange, id(asyncio.get_running_loop()))
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = make_client(
                exchange,
                sandbox_url=self.settings.sandbox_url,
                rate_limits=self.settings.client_rate_limits,
                rate_limit_scale=self.settings.rate_limit_scale,
                allowance=self.settings.allowance,
                allowance_fallback_processes=self.settings.allowance_fallback_processes,
                binance_source=self.settings.binance_source,
                archive_url=self.settings.binance_archive_url,
            )
        return client

    def client_stats(self) -> dict[str, dict[str, int]]:
        """Requests, retries and refusals of the run's clients so far (closed ones too), per
        exchange; `archive_requests` beside them where a bulk archive was read."""
        out: dict[str, dict[str, int]] = {}
        clients = [(exchange, c) for (exchange, _), c in self._clients.items()] + self._closed
        for exchange, client in clients:
            s = client.stats
            row = out.setdefault(exchange.value, {"requests": 0, "retries": 0, "rate_limited": 0})
            row["requests"] += s.requests
            row["retries"] += s.retries
            row["rate_limited"] += s.rate_limited
            archive = getattr(client, "archive", None)  # Binance's bulk archive transport
            if archive is not None and archive.stats.requests:
                row["archive_requests"] = row.get("archive_requests", 0) + archive.stats.requests
        return out

    async def aclose(self) -> None:
        """Close the clients of the running event loop."""
        loop = id(asyncio.get_running_loop())
        for key in [k for k in self._clients if k[1] == loop]:
            client = self._clients.pop(key)
            self._closed.append((key[0], client))
            await client.aclose()
