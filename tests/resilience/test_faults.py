"""A backfill against a hostile exchange lands exactly what a fault-free run lands."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tests.resilience.support import END, SELECTION, START, assert_same_silver, silver_tables

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_hostile_exchange_gives_identical_silver_and_no_ban(
    make_sandbox: Any,
    warehouse_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    reference: dict[str, pl.DataFrame],
) -> None:
    from flows.backfill import backfill_flow
    from models.selection import Selection

    hostile = make_sandbox(seed=7, faults="hostile", rate_limits="real")
    monkeypatch.setenv("CRYPTO_PIPELINE_SANDBOX_URL", hostile.url)
    state = asyncio.run(
        backfill_flow(selection=Selection(start=START, end=END, **SELECTION), return_state=True)
    )
    assert state.is_completed(), state.message

    stats = hostile.stats()
    assert sum(s["faults"] for s in stats.values()) > 0  # faults really were injected
    assert sum(s["rate_limited"] for s in stats.values()) > 0  # including 429 bursts
    limits = hostile.state
    assert limits.binance_spot.bans == 0 and limits.binance_futures.bans == 0  # never a 418

    assert_same_silver(silver_tables(str(warehouse_dir)), reference)
