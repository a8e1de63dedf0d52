"""Fixtures of the client tests: a Redis for the shared allowance."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from clients.redis_allowance import RedisAllowance

# A database of its own, so tests never touch what a pipeline on this machine keeps in db 0.
TEST_REDIS_URL = os.environ.get("CRYPTO_PIPELINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis (`.ci/run` starts one); without it the tests needing it fail, naming
    the address (a skipped test would prove nothing)."""
    try:
        with redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1) as probe:
            probe.ping()
    except (redis.RedisError, OSError) as exc:
        pytest.fail(
            f"no Redis at {TEST_REDIS_URL} (.ci/run starts one; or set "
            f"CRYPTO_PIPELINE_TEST_REDIS_URL): {exc}"
        )
    return TEST_REDIS_URL


@pytest.fixture
def redis_backend(redis_url: str) -> Iterator[Callable[[], RedisAllowance]]:
    """`make()` gives one more backend on the same keys, as another process would have."""
    namespace = f"test-allowance:{uuid.uuid4().hex}"

    def make() -> RedisAllowance:
        return RedisAllowance(redis_url, namespace=namespace)

    yield make
    with redis.Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(f"{namespace}:*"))
        if keys:
            client.delete(*keys)
