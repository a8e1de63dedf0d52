"""Shared pytest fixtures: the offline sandbox exchange.

* ``sandbox``: one clean :class:`SandboxServer` per session (seed 7, rate limits off, no faults).
* ``sandbox_url``: its base URL, e.g. ``http://127.0.0.1:54321``.
* ``make_sandbox(**config)``: start a sandbox with a custom :class:`SandboxConfig`; every server
  started this way is stopped at the end of the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import SandboxConfig, SandboxServer


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(seed=7, rate_limits="off", faults="none")) as server:
        yield server


@pytest.fixture(scope="session")
def sandbox_url(sandbox: SandboxServer) -> str:
    return sandbox.url


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., SandboxServer]]:
    started: list[SandboxServer] = []

    def make(**config: Any) -> SandboxServer:
        server = SandboxServer(SandboxConfig(**config)).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


# Prefect fixtures shared by tests/flows and tests/resilience (moved from tests/flows/conftest.py).


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """One temporary Prefect API (SQLite) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture
def warehouse_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh warehouse and dataset folder for one test, via the settings' environment."""
    warehouse = tmp_path / "warehouse"
    monkeypatch.setenv("CRYPTO_PIPELINE_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("CRYPTO_PIPELINE_PUBLISH_DIR", str(tmp_path / "dataset"))
    monkeypatch.setenv("CRYPTO_PIPELINE_TASK_RETRIES", "1")
    monkeypatch.setenv("CRYPTO_PIPELINE_TASK_RETRY_DELAY_S", "0.2")
    return warehouse
