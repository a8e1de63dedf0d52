"""Deployments of prefect.yaml run by process workers on a real server backed by PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import polars as pl

from models.enums import Layer
from storage import Warehouse
from tests.e2e.conftest import PrefectStack, run_and_wait

PARAMS = {"symbols": ["BTCUSDT", "ETHUSDT"], "intervals": ["1h", "1d"]}


async def artifact_keys(flow_run_id: Any) -> set[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key for a in artifacts if a.key}


def test_backfill_deployment_on_process_workers(
    api_env: PrefectStack, sandbox: Any, tmp_path: Path
) -> None:
    stack = api_env
    warehouse = tmp_path / "warehouse"
    worker_env = {
        "CRYPTO_PIPELINE_WAREHOUSE": str(warehouse),
        "CRYPTO_PIPELINE_SANDBOX_URL": sandbox.url,
        "CRYPTO_PIPELINE_TASK_RETRY_DELAY_S": "0.5",
    }
    stack.start_worker("w1", worker_env)

    sandbox.reset_stats()
    first = asyncio.run(
        run_and_wait(
            stack,
            "backfill/backfill",
            {"selection": {"start": "2024-02-29", "end": "2024-02-29", **PARAMS}},
        )
    )
    assert first.state.is_completed(), first.state.message
    silver = Warehouse(str(warehouse)).scan(Layer.SILVER, "ohlcv").collect()
    assert set(silver["exchange"].unique()) == {"binance", "coinbase", "okx"}
    assert {"silver-coverage", "silver-quality", "bronze-partitions"} <= asyncio.run(
        artifact_keys(first.id)
    )

    sandbox.reset_stats()
    second = asyncio.run(
        run_and_wait(
            stack,
            "backfill/backfill",
            {"selection": {"start": "2024-02-29", "end": "2024-02-29", **PARAMS}},
        )
    )
    assert second.state.is_completed(), second.state.message
    assert sum(int(v.get("requests", 0)) for v in sandbox.stats().values()) == 0

    # a chunked backfill shared by two workers: each day lands once, no duplicates
    stack.start_worker("w2", worker_env)
    chunked = asyncio.run(
        run_and_wait(
            stack,
            "backfill/backfill",
            {"selection": {"start": "2024-03-01", "end": "2024-03-04", **PARAMS}, "chunk_days": 1},
        )
    )
    assert chunked.state.is_completed(), chunked.state.message
    silver = Warehouse(str(warehouse)).scan(Layer.SILVER, "ohlcv").collect()
    march = silver.filter(pl.col("ts").dt.month() == 3)
    assert march.select(pl.col("ts").dt.date().n_unique()).item() == 4
    assert march.select(pl.struct("exchange", "symbol", "interval", "ts").is_unique().all()).item()
    stack.stop_workers()
