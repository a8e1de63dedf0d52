"""Concurrent flow runs of the backfill deployment on process workers share one allowance.

Two flow runs of `backfill/backfill`, created at once, each taken by its own process worker
(at most one run each) and running at the same time, backfill disjoint days against one
sandbox enforcing the exchanges' real limits (scaled as in `benchmarks.shared_allowance`); the
allowance is kept in Redis. The exchanges must refuse nothing and every run must complete
with its days complete in silver.
How much of the binding allowance the runs used is a benchmark figure
(`python -m benchmarks.shared_allowance --mode deployment`), printed here, not asserted.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import redis

from benchmarks.shared_allowance import (
    ALLOWANCES,
    BINDING,
    create_flow_runs,
    most_at_once,
    pipeline_env,
    recording_sandbox,
    selection,
    shares,
    silver_complete,
    utilization_of,
    wait_final,
    workers_online,
)
from tests.e2e.conftest import PrefectStack

REDIS_URL = os.environ.get("CRYPTO_PIPELINE_TEST_E2E_REDIS_URL", "redis://127.0.0.1:6379/13")
RUNS = 2
# eight days of 1m candles of two symbols per run (~17 s each), long beside the skew of the
# two runs' starts (clone and install steps; four days, ~8 s, once did not overlap)
DAYS = 16


@pytest.fixture
def shared_redis() -> str:
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1) as probe:
            probe.ping()
    except (redis.RedisError, OSError) as exc:
        pytest.fail(f"no Redis at {REDIS_URL} (.ci/run starts one): {exc}")
    return REDIS_URL


def test_concurrent_deployment_runs_on_two_workers_draw_no_429_and_complete(
    api_env: PrefectStack, shared_redis: str, tmp_path: Path
) -> None:
    stack = api_env
    stack.stop_workers()
    warehouse = tmp_path / "warehouse"
    sends: list[tuple[str, float]] = []
    with recording_sandbox(sends) as sandbox:
        env = {
            **pipeline_env(str(warehouse), sandbox.url, shared_redis),
            "CRYPTO_PIPELINE_TASK_RETRY_DELAY_S": "0.5",
        }
        try:
            for i in range(RUNS):
                own = tmp_path / f"worker-{i}"
                (own / "tmp").mkdir(parents=True)
                stack.start_worker(
                    f"allowance-{i}",
                    {**env, "PREFECT_HOME": str(own / "prefect"), "TMPDIR": str(own / "tmp")},
                    limit=1,
                )
            # both workers poll before the runs exist: each takes one at once (a worker still
            # starting on a loaded machine would leave both runs to the other, one after another)
            asyncio.run(workers_online([f"allowance-{i}" for i in range(RUNS)]))
            created = asyncio.run(
                create_flow_runs([{"selection": selection(a, b)} for a, b in shares(DAYS, RUNS)])
            )
            ended = asyncio.run(wait_final([r.id for r in created], timeout=600))
        finally:
            stack.stop_workers()
            # the allowance's keys name the sandbox's address: no other run ever meets them
            with redis.Redis.from_url(shared_redis) as client:
                keys = list(client.scan_iter(f"*{sandbox.url.removeprefix('http://')}*"))
                if keys:
                    client.delete(*keys)
        stats = sandbox.stats()

    for run in ended:
        assert run.state is not None and run.state.is_completed(), (
            f"{run.name}: {run.state.name if run.state else None} "
            f"{run.state.message if run.state else ''}; worker logs in {stack.home}"
        )
    # each run in its own process (one run per worker at most: each on its own worker), and
    # the two ran at the same time
    assert len({r.infrastructure_pid for r in ended}) == RUNS
    spans = [(r.name, r.start_time, r.end_time) for r in ended]
    assert most_at_once(ended) == RUNS, f"the runs did not overlap: {spans}"
    # the exchanges refused nothing, and the measured allowances were drawn on
    assert {name: int(s["rate_limited"]) for name, s in stats.items()} == {
        name: 0 for name in stats
    }
    assert all(any(n == name for n, _ in sends) for name in ALLOWANCES)
    assert silver_complete(str(warehouse), DAYS)
    used = utilization_of(sends)
    print(f"\nutilization of the {BINDING} allowance by {RUNS} deployment runs: {used}")
