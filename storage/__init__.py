"""Warehouse storage: hive-partitioned Parquet on local disk or S3, atomic writes, partition
identity (the one place keys and paths are built), the coverage index and planning."""

from storage.coverage import CoverageIndex, merge_days, summarize
from storage.layout import SHAPES, PartitionKey, parse_path
from storage.warehouse import ShrinkRefused, Warehouse, WriteResult

# Every silver dataset, in the order reports list them.
SILVER_DATASETS: tuple[str, ...] = tuple(SHAPES)

__all__ = [
    "SHAPES",
    "SILVER_DATASETS",
    "CoverageIndex",
    "PartitionKey",
    "ShrinkRefused",
    "Warehouse",
    "WriteResult",
    "merge_days",
    "parse_path",
    "summarize",
]
