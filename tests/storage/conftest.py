"""Fixtures: the same warehouse suite runs on local disk and on S3 (moto's server)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import Warehouse
from tests.storage.s3 import S3Endpoint, aws_env, moto_s3


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    with moto_s3() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def s3_bucket(s3_endpoint: S3Endpoint) -> str:
    return s3_endpoint.create_bucket("warehouse-tests")


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def warehouse_uri(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty warehouse URI on the backend under test (AWS variables set for S3)."""
    if backend == "local":
        yield str(tmp_path / "warehouse")
        return
    endpoint: S3Endpoint = request.getfixturevalue("s3_endpoint")
    bucket: str = request.getfixturevalue("s3_bucket")
    with aws_env(endpoint):
        yield f"s3://{bucket}/{uuid.uuid4().hex[:10]}/warehouse"


@pytest.fixture
def warehouse(warehouse_uri: str) -> Warehouse:
    return Warehouse(warehouse_uri)
