"""What a backfill's fan-out hands its chunk runs, and which run announces silver."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from clients.allowance import AllowanceUnavailable
from flows.backfill import chunk_job_variables


@pytest.mark.parametrize(
    ("allowance", "runs", "expected"),
    [
        ("local", 3, {"env": {"CRYPTO_PIPELINE_ALLOWANCE": "local/3"}}),
        ("local", 1, None),  # one chunk run at a time owns the allowance alone
        ("local/4", 3, None),  # split on purpose already
        ("redis://127.0.0.1:6379/0", 3, None),  # shared: never a URL in job variables
    ],
)
def test_chunk_runs_split_a_per_process_allowance(
    allowance: str, runs: int, expected: dict[str, Any] | None
) -> None:
    assert chunk_job_variables(allowance, runs) == expected


def test_a_configured_redis_that_is_down_stops_the_run_context_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.entry import run_context

    monkeypatch.setenv("CRYPTO_PIPELINE_ALLOWANCE", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("CRYPTO_PIPELINE_ALLOWANCE_FALLBACK_PROCESSES", "0")
    with pytest.raises(AllowanceUnavailable) as caught:
        run_context()
    message = str(caught.value)
    assert "CRYPTO_PIPELINE_ALLOWANCE=redis://127.0.0.1:1/0" in message
    assert "\n" not in message


@pytest.mark.usefixtures("prefect_api")
def test_only_a_top_level_run_emits_silver_completed(
    sandbox: Any, warehouse_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect import flow

    import flows.silver
    from flows.backfill import backfill_flow
    from models.selection import Selection

    monkeypatch.setenv("CRYPTO_PIPELINE_SANDBOX_URL", sandbox.url)
    emitted: list[dict[str, Any]] = []
    monkeypatch.setattr(flows.silver, "emit_event", lambda **event: emitted.append(event))
    day = date(2024, 2, 27)
    selection = Selection(
        start=day, end=day, symbols=["BTCUSDT"], intervals=["1h"], datasets=["ohlcv"], force=True
    )

    state = asyncio.run(backfill_flow(selection=selection, return_state=True))
    assert state.is_completed(), state.message
    assert [e["event"] for e in emitted] == [flows.silver.SILVER_COMPLETED_EVENT]
    assert emitted[0]["payload"]["start"] == day.isoformat()

    @flow(name="outer")
    async def outer() -> None:
        await backfill_flow(selection=selection)
        await backfill_flow(selection=selection)

    emitted.clear()
    asyncio.run(outer())
    assert emitted == []  # the stages under a parent leave the announcement to it


@pytest.mark.usefixtures("prefect_api")
def test_a_fan_out_with_nothing_to_do_starts_no_chunk_run_and_asks_no_publish(
    sandbox: Any, warehouse_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Injected: a fan-out (2 days in 1-day chunks) over a range stored complete, then the same
    range forced. Held: the first starts no chunk run and emits nothing; the forced one starts
    both chunk runs and asks for the publish once."""
    from prefect import flow
    from prefect.client.schemas.objects import FlowRun
    from prefect.states import Completed

    import flows.backfill
    import flows.silver
    from flows.backfill import backfill_flow, fan_out
    from flows.entry import run_context
    from models.selection import Selection

    monkeypatch.setenv("CRYPTO_PIPELINE_SANDBOX_URL", sandbox.url)
    emitted: list[dict[str, Any]] = []
    monkeypatch.setattr(flows.silver, "emit_event", lambda **event: emitted.append(event))
    started: list[dict[str, Any]] = []

    async def run_deployment(name: str, parameters: dict[str, Any], **_: Any) -> FlowRun:
        started.append(parameters["selection"])
        return FlowRun(flow_id=uuid4(), state=Completed())

    monkeypatch.setattr(flows.backfill, "run_deployment", run_deployment)
    stored = Selection(
        start=date(2024, 2, 26),
        end=date(2024, 2, 27),
        symbols=["BTCUSDT"],
        intervals=["1h"],
        datasets=["ohlcv"],
    )
    assert asyncio.run(backfill_flow(selection=stored, return_state=True)).is_completed()
    emitted.clear()

    @flow(name="parent")
    async def parent(force: bool) -> Any:
        selection = stored.model_copy(update={"force": force})
        return await fan_out(selection, 1, 2, "backfill/backfill", run_context())

    report = asyncio.run(parent(False))
    assert (report.chunks, started, emitted) == (0, [], [])

    report = asyncio.run(parent(True))
    assert report.chunks == 2 and len(started) == 2
    assert [e["event"] for e in emitted] == [flows.silver.SILVER_COMPLETED_EVENT]
