"""The AWS variables of `.env` reach the S3 clients (pyarrow and polars), never a dump or repr.

pydantic-settings reads `.env`, but the S3 clients look only at the process environment: the
settings carry the AWS variables and `Warehouse.from_settings` hands them to the storage layer.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from models.settings import load_settings
from storage import Warehouse
from tests.storage.s3 import S3_ENV_KEYS, S3Endpoint

KEY_ID = "AKIADOTENVKEYID"
SECRET = "dotenv-secret-value-9f3b"
TOKEN = "dotenv-session-token-77c1"


@pytest.fixture
def no_aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in S3_ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    yield


def write_dotenv(directory: Path, endpoint: S3Endpoint, bucket: str) -> None:
    (directory / ".env").write_text(
        f"CRYPTO_PIPELINE_WAREHOUSE=s3://{bucket}/from-dotenv\n"
        f"AWS_ENDPOINT_URL={endpoint.url}\n"
        "AWS_REGION=us-east-1\n"
        f"AWS_ACCESS_KEY_ID={KEY_ID}\n"
        f"AWS_SECRET_ACCESS_KEY={SECRET}\n"
        f"AWS_SESSION_TOKEN={TOKEN}\n"
    )


def test_dotenv_aws_variables_reach_both_s3_clients(
    s3_endpoint: S3Endpoint,
    s3_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_aws_env: None,
) -> None:
    write_dotenv(tmp_path, s3_endpoint, s3_bucket)
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    warehouse = Warehouse.from_settings(settings)
    assert warehouse.uri == f"s3://{s3_bucket}/from-dotenv"

    # pyarrow's S3 filesystem: the endpoint exists only in .env, so a round trip proves it
    buffer = io.BytesIO()
    pl.DataFrame({"x": [1, 2, 3]}).write_parquet(buffer)
    warehouse.store.put_bytes("probe/x.parquet", buffer.getvalue())
    assert warehouse.store.read_bytes("probe/x.parquet") == buffer.getvalue()
    # polars' object store, through the same settings
    read = pl.read_parquet(
        warehouse.store.uri("probe/x.parquet"), storage_options=warehouse.storage_options
    )
    assert read["x"].to_list() == [1, 2, 3]
    assert warehouse.storage_options is not None
    assert warehouse.storage_options["aws_access_key_id"] == KEY_ID
    assert warehouse.storage_options["aws_secret_access_key"] == SECRET
    assert warehouse.storage_options["aws_session_token"] == TOKEN
    keys = {o["Key"] for o in s3_endpoint.client().list_objects_v2(Bucket=s3_bucket)["Contents"]}
    assert "from-dotenv/probe/x.parquet" in keys


def test_the_process_environment_wins_over_dotenv(
    s3_endpoint: S3Endpoint,
    s3_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_aws_env: None,
) -> None:
    write_dotenv(tmp_path, s3_endpoint, s3_bucket)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-environment")
    settings = load_settings()
    assert settings.s3_env()["AWS_ACCESS_KEY_ID"] == "from-environment"
    assert settings.s3_env()["AWS_SECRET_ACCESS_KEY"] == SECRET


def test_credentials_never_reach_a_repr_or_dump(
    s3_endpoint: S3Endpoint,
    s3_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_aws_env: None,
) -> None:
    write_dotenv(tmp_path, s3_endpoint, s3_bucket)
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    warehouse = Warehouse.from_settings(settings)
    shown = [
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        str(settings.model_dump()),
        repr(warehouse),
        repr(warehouse._location),
    ]
    for text in shown:
        assert SECRET not in text and TOKEN not in text and KEY_ID not in text
    assert "**********" in settings.model_dump_json()
