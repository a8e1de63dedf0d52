"""Resilience suite fixtures: the shared Prefect API, and one fault-free reference backfill."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from sandbox import SandboxServer
from tests.resilience.support import END, SELECTION, START, silver_tables


@pytest.fixture(scope="session")
def api_url(prefect_api: None) -> str:
    """URL of the session's Prefect test server, for CLI subprocesses (no ephemeral servers)."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url
    return str(url)


@pytest.fixture(scope="session")
def prefect_db(prefect_api: None) -> Path:
    """The SQLite file behind the session's Prefect test server."""
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    url = str(PREFECT_SERVER_DATABASE_CONNECTION_URL.value())
    return Path(url.split(":///", 1)[1])


@pytest.fixture(scope="session")
def reference(
    prefect_api: None, sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, pl.DataFrame]:
    """Silver of one uninterrupted, fault-free backfill of the suite's selection."""
    from flows.backfill import backfill_flow
    from models.selection import Selection

    warehouse = tmp_path_factory.mktemp("reference") / "warehouse"
    env = {
        "CRYPTO_PIPELINE_WAREHOUSE": str(warehouse),
        "CRYPTO_PIPELINE_SANDBOX_URL": sandbox.url,
    }
    with patched_env(env):
        state = asyncio.run(
            backfill_flow(selection=Selection(start=START, end=END, **SELECTION), return_state=True)
        )
    assert state.is_completed(), state.message
    return silver_tables(str(warehouse))


class patched_env:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        for key, value in self.values.items():
            self.saved[key] = os.environ.get(key)
            os.environ[key] = value

    def __exit__(self, *exc: object) -> None:
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CRYPTO_PIPELINE_TASK_RETRIES", "0")
    yield
