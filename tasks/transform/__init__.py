"""Silver transforms: pure Polars functions from bronze frames to validated silver frames.

No I/O and no Prefect here; `build_silver` is the one entry point per partition.
"""

from tasks.transform.aggregate import aggregate_ohlcv
from tasks.transform.common import dedup_latest, quarantine_schema
from tasks.transform.coverage import (
    dense_view,
    gridless_coverage,
    ohlcv_coverage,
    open_interest_coverage,
)
from tasks.transform.funding import normalize_funding
from tasks.transform.instruments import normalize_instruments
from tasks.transform.ohlcv import normalize_ohlcv, resample_ohlcv
from tasks.transform.open_interest import normalize_open_interest
from tasks.transform.silver_batch import SilverBatch, build_silver
from tasks.transform.validate import validate

__all__ = [
    "SilverBatch",
    "aggregate_ohlcv",
    "build_silver",
    "dedup_latest",
    "dense_view",
    "gridless_coverage",
    "normalize_funding",
    "normalize_instruments",
    "normalize_ohlcv",
    "normalize_open_interest",
    "ohlcv_coverage",
    "open_interest_coverage",
    "quarantine_schema",
    "resample_ohlcv",
    "validate",
]
