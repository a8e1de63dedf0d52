"""Partition keys, their deterministic paths, and URI resolution."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.enums import Exchange, Interval, Layer
from models.errors import InputError
from models.settings import Settings
from storage import SHAPES, PartitionKey, Warehouse, parse_path
from storage.fs import open_location, polars_storage_options, s3_filesystem, s3_settings


def test_paths_follow_the_layout() -> None:
    day = date(2024, 1, 5)
    ohlcv = PartitionKey(
        layer=Layer.SILVER, dataset="ohlcv", exchange="okx", interval="1m", day=day
    )
    assert ohlcv.path == "silver/ohlcv/exchange=okx/interval=1m/date=2024-01-05/part-0.parquet"
    funding = PartitionKey(
        layer=Layer.BRONZE, dataset="funding", exchange="binance", interval=None, day=day
    )
    assert funding.path == "bronze/funding/exchange=binance/date=2024-01-05/part-0.parquet"
    agg = PartitionKey(
        layer=Layer.SILVER, dataset="ohlcv_aggregated", exchange=None, interval="4h", day=day
    )
    assert agg.path == "silver/ohlcv_aggregated/interval=4h/date=2024-01-05/part-0.parquet"
    assert agg.partition_values == {"interval": "4h"}


def test_enum_members_are_stored_as_plain_values() -> None:
    k = PartitionKey(
        layer=Layer.SILVER,
        dataset="ohlcv",
        exchange=Exchange.OKX,
        interval=Interval.H1,
        day=date(2024, 1, 1),
    )
    assert type(k.exchange) is str and type(k.interval) is str
    assert k == PartitionKey(
        layer=Layer.SILVER, dataset="ohlcv", exchange="okx", interval="1h", day=date(2024, 1, 1)
    )


@pytest.mark.parametrize(
    ("dataset", "exchange", "interval", "message"),
    [
        ("ohlcv", "binance", None, "needs an interval"),
        ("funding", "binance", "1h", "has no interval level"),
        ("ohlcv_aggregated", "okx", "1h", "has no exchange level"),
        ("ohlcv", None, "1h", "needs an exchange"),
        ("trades", "okx", None, "unknown dataset 'trades'"),
        ("ohlcv", "kraken", "1h", "kraken"),
        ("ohlcv", "okx", "2m", "2m"),
    ],
)
def test_keys_that_break_the_layout_are_refused(
    dataset: str, exchange: str | None, interval: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        PartitionKey(
            layer=Layer.SILVER,
            dataset=dataset,
            exchange=exchange,
            interval=interval,
            day=date(2024, 1, 1),
        )


@st.composite
def keys(draw: st.DrawFn) -> PartitionKey:
    dataset = draw(st.sampled_from(sorted(SHAPES)))
    shape = SHAPES[dataset]
    return PartitionKey(
        layer=draw(st.sampled_from(list(Layer))),
        dataset=dataset,
        exchange=draw(st.sampled_from([e.value for e in Exchange])) if shape.exchange else None,
        interval=draw(st.sampled_from([i.value for i in Interval])) if shape.interval else None,
        day=draw(st.dates(date(2017, 1, 1), date(2030, 12, 31))),
    )


@given(keys())
def test_paths_parse_back_to_their_key(key: PartitionKey) -> None:
    assert parse_path(key.path) == key


@pytest.mark.parametrize(
    "path",
    [
        "silver/ohlcv/exchange=okx/interval=1m/date=2024-01-05/part-1.parquet",
        "silver/ohlcv/exchange=okx/date=2024-01-05/part-0.parquet",
        "silver/ohlcv/exchange=okx/interval=1m/date=2024-13-05/part-0.parquet",
        "_coverage/fragments/1-a.parquet",
        "silver/funding/exchange=okx/interval=1h/date=2024-01-05/part-0.parquet",
    ],
)
def test_foreign_paths_are_not_partitions(path: str) -> None:
    assert parse_path(path) is None


def test_relative_and_file_uris_resolve_locally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert open_location("data/warehouse").uri == (tmp_path / "data/warehouse").as_posix()
    assert open_location(f"file://{tmp_path}/wh").root == f"{tmp_path}/wh"
    settings = Settings(warehouse="./here")
    assert Warehouse.from_settings(settings).uri == (tmp_path / "here").as_posix()


def test_unsupported_uris_are_refused() -> None:
    with pytest.raises(InputError, match="gs://bucket"):
        open_location("gs://bucket/x")
    with pytest.raises(InputError, match="Bad_Bucket"):
        open_location("s3://Bad_Bucket/x")


def test_s3_settings_come_from_the_standard_aws_variables() -> None:
    env = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "id",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_SESSION_TOKEN": "token",
    }
    settings = s3_settings(env)
    assert settings == {
        "endpoint_url": "http://127.0.0.1:9000",
        "region": "eu-west-1",
        "access_key": "id",
        "secret_key": "secret",
        "session_token": "token",
    }
    assert polars_storage_options(settings) == {
        "aws_endpoint_url": "http://127.0.0.1:9000",
        "aws_region": "eu-west-1",
        "aws_access_key_id": "id",
        "aws_secret_access_key": "secret",
        "aws_session_token": "token",
        "aws_allow_http": "true",
    }
    assert s3_settings({**env, "AWS_REGION": "us-west-2"})["region"] == "us-west-2"
    assert s3_settings({"AWS_ENDPOINT_URL_S3": "https://s3.example"})["region"] == "us-east-1"
    assert s3_filesystem(settings).region == "eu-west-1"
    location = open_location("s3://my-bucket/some/prefix/", env)
    assert (location.uri, location.root) == ("s3://my-bucket/some/prefix", "my-bucket/some/prefix")
