"""The same backfill into `s3://bucket/prefix` (moto's S3 server on loopback) lands the same data
as on local disk. An upload cut mid-request leaving the old object is proven at the storage
level: tests/storage/test_storage_warehouse.py
(`test_s3_upload_cut_mid_request_keeps_the_old_object`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import polars as pl
import pytest

from models.enums import Layer
from models.selection import Selection
from storage import Warehouse
from tests.resilience.support import END, SELECTION, START, assert_same_silver, silver_tables
from tests.storage.s3 import aws_env, moto_s3

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_backfill_into_s3_lands_the_same_silver(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, reference: dict[str, pl.DataFrame]
) -> None:
    from flows.backfill import backfill_flow

    with moto_s3() as s3, aws_env(s3):
        bucket = s3.create_bucket()
        uri = f"s3://{bucket}/warehouse"
        monkeypatch.setenv("CRYPTO_PIPELINE_WAREHOUSE", uri)
        monkeypatch.setenv("CRYPTO_PIPELINE_SANDBOX_URL", sandbox.url)
        state = asyncio.run(
            backfill_flow(selection=Selection(start=START, end=END, **SELECTION), return_state=True)
        )
        assert state.is_completed(), state.message

        keys = [obj["Key"] for obj in s3.client().list_objects_v2(Bucket=bucket)["Contents"]]
        assert all(k.startswith("warehouse/") for k in keys)
        assert not [k for k in keys if ".staging" in k or k.endswith(".tmp")]
        wh = Warehouse(uri)
        for key in wh.list_keys(Layer.SILVER, "ohlcv"):
            assert wh.validate(key) is None
        assert_same_silver(silver_tables(uri), reference)
