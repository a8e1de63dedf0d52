"""A chunked backfill shared by two process workers that share nothing but the network.

The sandbox enforces the exchanges' real limits (scaled down so a few days contend for them);
both workers draw on one allowance kept in Redis, keep the warehouse on S3 (moto's server), and
each has its own Prefect home and temporary directory, so nothing in a run can lean on a disk
another worker also sees. The fan-out parent starts at most `max_chunk_runs` chunk runs at once,
and the publish deployment runs once for the whole backfill (not once per chunk); a publish
right after it, of the same silver, commits nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import redis

from models.enums import Layer
from storage import Warehouse
from tests.e2e.conftest import PrefectStack, run_and_wait
from tests.storage.s3 import S3Endpoint, aws_env, moto_s3

# Every allowance of the sandbox and of the clients x0.25 (OKX history candles: 5 requests per
# rolling 2 s, Coinbase 2.5 requests/s): four days of two symbols keep the workers waiting on it.
SCALE = 0.25
REDIS_URL = os.environ.get("CRYPTO_PIPELINE_TEST_E2E_REDIS_URL", "redis://127.0.0.1:6379/13")
START, END = date(2024, 3, 10), date(2024, 3, 13)
SELECTION = {
    "start": START.isoformat(),
    "end": END.isoformat(),
    "symbols": ["BTCUSDT", "ETHUSDT"],
    "intervals": ["15m", "1h", "1d"],
}
MAX_CHUNK_RUNS = 2
# Seconds without a new publish run after which no more is coming (event to run: ~1 s).
PUBLISH_QUIET_S = 8.0


@pytest.fixture
def shared_redis() -> str:
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1) as probe:
            probe.ping()
    except (redis.RedisError, OSError) as exc:
        pytest.fail(f"no Redis at {REDIS_URL} (.ci/run starts one): {exc}")
    return REDIS_URL


@pytest.fixture
def s3() -> Iterator[S3Endpoint]:
    with moto_s3() as endpoint:
        yield endpoint


async def flow_runs(**filters: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    run_filter = None
    if "parent" in filters:
        run_filter = FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[filters["parent"]])
        )
    deployment_filter = None
    if "deployment" in filters:
        deployment_filter = DeploymentFilter(
            name=DeploymentFilterName(any_=[filters["deployment"]])
        )
    async with get_client() as client:
        return list(
            await client.read_flow_runs(
                flow_run_filter=run_filter,
                deployment_filter=deployment_filter,
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            )
        )


def publish_runs() -> list[Any]:
    """Runs of the publish deployment except those its cron schedule made."""
    return [r for r in asyncio.run(flow_runs(deployment="publish")) if not r.auto_scheduled]


async def cancel(flow_run_ids: list[Any]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled

    async with get_client() as client:
        for flow_run_id in flow_run_ids:
            await client.set_flow_run_state(flow_run_id, Cancelled(), force=True)


def publish_runs_after(before: set[Any], timeout: float = 180) -> list[Any]:
    """The publish runs started since `before`, once all are final and none has appeared for
    `PUBLISH_QUIET_S` (an event becomes a run within about a second)."""
    deadline = time.monotonic() + timeout
    seen: set[Any] = set()
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        runs = [r for r in publish_runs() if r.id not in before]
        if {r.id for r in runs} != seen:
            seen, quiet_since = {r.id for r in runs}, time.monotonic()
        settled = all(r.state is not None and r.state.is_final() for r in runs)
        if settled and time.monotonic() - quiet_since >= PUBLISH_QUIET_S:
            return runs
        time.sleep(1.0)
    raise AssertionError(f"publish runs did not settle: {sorted(map(str, seen))}")


async def artifact(flow_run_id: Any, key: str) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                key=ArtifactFilterKey(any_=[key]),
            )
        )
    assert found, f"no artifact {key!r} on flow run {flow_run_id}"
    return found[0].data


def most_at_once(runs: list[Any]) -> int:
    """The largest number of `runs` that were running at one moment."""
    edges = sorted(
        [(r.start_time.timestamp(), 1) for r in runs] + [(r.end_time.timestamp(), -1) for r in runs]
    )
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def test_chunked_backfill_on_two_workers_shares_one_allowance_and_publishes_once(
    api_env: PrefectStack,
    make_sandbox: Any,
    s3: S3Endpoint,
    shared_redis: str,
    tmp_path: Path,
) -> None:
    stack = api_env
    sandbox = make_sandbox(seed=7, rate_limits="real", rate_limit_scale=SCALE)
    bucket = s3.create_bucket()
    warehouse_uri = f"s3://{bucket}/warehouse"
    common = {
        **s3.env,
        "CRYPTO_PIPELINE_WAREHOUSE": warehouse_uri,
        "CRYPTO_PIPELINE_SANDBOX_URL": sandbox.url,
        "CRYPTO_PIPELINE_RATE_LIMIT_SCALE": str(SCALE),
        "CRYPTO_PIPELINE_ALLOWANCE": shared_redis,
        "CRYPTO_PIPELINE_TASK_RETRY_DELAY_S": "0.5",
        # the publish target, as a Hub repo would be; no run state lives there
        "CRYPTO_PIPELINE_PUBLISH_DIR": str(tmp_path / "dataset"),
    }
    # publish runs earlier tests triggered wait for workers that are gone: not ours to run
    stack.stop_workers()
    earlier = publish_runs()
    asyncio.run(cancel([r.id for r in earlier if r.state is None or not r.state.is_final()]))
    before = {r.id for r in earlier}
    for name in ("shared-a", "shared-b"):
        own = tmp_path / name  # this worker's disk: Prefect home (results), temporary files
        (own / "tmp").mkdir(parents=True)
        stack.start_worker(
            name,
            {**common, "PREFECT_HOME": str(own / "prefect"), "TMPDIR": str(own / "tmp")},
        )
    try:
        sandbox.reset_stats()
        parent = asyncio.run(
            run_and_wait(
                stack,
                "backfill/backfill",
                {"selection": SELECTION, "chunk_days": 1, "max_chunk_runs": MAX_CHUNK_RUNS},
            )
        )
        stats = sandbox.stats()
        assert parent.state.is_completed(), parent.state.message

        # the exchanges never refused a request, though every chunk ran on one allowance
        assert {name: s["rate_limited"] for name, s in stats.items()} == {
            "binance": 0,
            "coinbase": 0,
            "okx": 0,
        }
        assert all(s["requests"] > 0 for s in stats.values())

        # every chunk ran as a child run and completed, never more than the bound at once
        children = asyncio.run(flow_runs(parent=parent.id))
        assert len(children) == 4
        assert all(c.state is not None and c.state.is_completed() for c in children)
        assert most_at_once(children) <= MAX_CHUNK_RUNS
        table = asyncio.run(artifact(parent.id, "backfill-chunks"))
        rows = table if isinstance(table, list) else json.loads(table)
        assert sorted(r["chunk"] for r in rows) == [
            f"{d}..{d}" for d in (START + timedelta(days=i) for i in range(4))
        ]
        assert {r["state"] for r in rows} == {"Completed"}

        # the data is complete, on S3
        with aws_env(s3):
            warehouse = Warehouse(warehouse_uri)
            coverage = warehouse.coverage.query(layer=Layer.SILVER, dataset="ohlcv")
            ohlcv = warehouse.scan(Layer.SILVER, "ohlcv").collect()
        assert not coverage.is_empty() and coverage["complete"].all()
        assert ohlcv.select(pl.col("ts").dt.date().n_unique()).item() == 4
        assert set(ohlcv["exchange"].unique()) == {"binance", "coinbase", "okx"}
        assert coverage.height == 3 * 2 * 3 * 4  # exchange x symbol x interval x day
        assert ohlcv.select(
            pl.struct("exchange", "symbol", "interval", "ts").is_unique().all()
        ).item()

        # one publish for the whole backfill, and a publish of the same silver commits nothing
        triggered = publish_runs_after(before)
        assert len(triggered) == 1, f"{len(triggered)} publish runs for one backfill"
        assert triggered[0].state.is_completed(), triggered[0].state.message
        first = asyncio.run(artifact(triggered[0].id, "gold-publish"))
        assert "added: 0," not in first
        again = asyncio.run(run_and_wait(stack, "gold/publish", {}))
        assert again.state.is_completed(), again.state.message
        second = asyncio.run(artifact(again.id, "gold-publish"))
        assert "added: 0, changed: 0, deleted: 0" in second, second
    finally:
        stack.stop_workers()
        # the allowance's keys name the sandbox's address: no other run ever meets them
        with redis.Redis.from_url(shared_redis) as client:
            keys = list(client.scan_iter(f"*{sandbox.url.removeprefix('http://')}*"))
            if keys:
                client.delete(*keys)


def test_a_worker_whose_shared_allowance_is_down_fails_runs_at_start_in_one_line(
    api_env: PrefectStack, sandbox: Any, tmp_path: Path
) -> None:
    stack = api_env
    down = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    stack.stop_workers()
    stack.start_worker(
        "no-redis",
        {
            "CRYPTO_PIPELINE_WAREHOUSE": str(tmp_path / "warehouse"),
            "CRYPTO_PIPELINE_SANDBOX_URL": sandbox.url,
            "CRYPTO_PIPELINE_ALLOWANCE": down,
        },
    )
    sandbox.reset_stats()
    try:
        run = asyncio.run(
            run_and_wait(
                stack,
                "backfill/backfill",
                {"selection": {"start": "2024-03-20", "end": "2024-03-20"}},
            )
        )
    finally:
        stack.stop_workers()
    assert run.state.is_failed()
    message = run.state.message or ""
    assert f"CRYPTO_PIPELINE_ALLOWANCE={down}" in message and "unavailable" in message
    assert "\n" not in message
    assert sum(int(s["requests"]) for s in sandbox.stats().values()) == 0
