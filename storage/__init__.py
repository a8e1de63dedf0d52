"""Warehouse storage: hive-partitioned Parquet on local disk or S3, atomic writes, coverage."""

from storage.coverage import CoverageIndex, merge_days, summarize
from storage.layout import SHAPES, PartitionKey, parse_path
from storage.warehouse import ShrinkRefused, Warehouse, WriteResult

__all__ = [
    "SHAPES",
    "CoverageIndex",
    "PartitionKey",
    "ShrinkRefused",
    "Warehouse",
    "WriteResult",
    "merge_days",
    "parse_path",
    "summarize",
]
