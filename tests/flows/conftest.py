"""Flow tests share one Prefect test server per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


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
