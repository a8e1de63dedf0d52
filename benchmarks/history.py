"""A long completed history built cheaply from one fetched day, for the re-run benchmarks.

Fetching a year through the sandbox takes about a minute on two cores, too long for
`--quick`. The re-run path reads the coverage index and the stored files' stamps, never the
files' rows (unless a stamp changed), so a year is built from a warehouse holding real fetched
days: every partition file of one template day is copied to each other day's path, and the
template day's coverage records (bronze and silver) are published for each copy with the
copy's own stamp, in one upsert. Planning then sees a year that is complete and undamaged,
exactly as after a real backfill; the re-run itself is the real one (`benchmarks.worker`,
job ``rerun``: the same stages the backfill runs).
"""

from __future__ import annotations

import os
import shutil
from datetime import date, timedelta

import polars as pl

from storage import Warehouse
from storage.layout import PartitionKey, parse_path

_DATA_LAYERS = ("bronze", "silver", "quarantine", "aggregated")


def _partition_keys(root: str, day: date) -> list[PartitionKey]:
    """The partition files of `day` (every layer, dataset, series), as storage names them."""
    out = []
    for layer in _DATA_LAYERS:
        base = os.path.join(root, layer)
        for folder, _dirs, files in os.walk(base):
            for name in files:
                key = parse_path(os.path.relpath(os.path.join(folder, name), root))
                if key is not None and key.day == day:
                    out.append(key)
    return sorted(out, key=lambda k: k.path)


def extend_history(root: str, template: date, days: list[date]) -> int:
    """Copy `template`'s partition files to each of `days` and record them complete as the
    template is recorded (coverage records with the copies' stamps). Returns files copied."""
    warehouse = Warehouse(root)
    files = _partition_keys(root, template)
    if not files:
        raise RuntimeError(f"no partition files for {template} under {root}")
    records = warehouse.coverage.query(start=template, end=template)
    if records.is_empty():
        raise RuntimeError(f"no coverage records for {template} under {root}")
    copied: list[str] = []
    for day in days:
        for key in files:
            target = key.model_copy(update={"day": day}).path
            os.makedirs(os.path.dirname(os.path.join(root, target)), exist_ok=True)
            shutil.copyfile(os.path.join(root, key.path), os.path.join(root, target))
            copied.append(target)
    stamps = warehouse.store.stamps(copied)
    rows = []
    for rel, stamp in stamps.items():
        copy = parse_path(rel)
        if copy is None or copy.layer.value not in ("bronze", "silver"):
            continue
        rows.append((copy.layer.value, copy.dataset, copy.exchange, copy.interval, copy.day, stamp))
    by_file = pl.DataFrame(
        rows,
        schema={
            "layer": pl.String(),
            "dataset": pl.String(),
            "exchange": pl.String(),
            "interval": pl.String(),
            "day": pl.Date(),
            "_stamp": pl.String(),
        },
        orient="row",
    )
    series = ["layer", "dataset", "exchange", "interval"]
    copies = (
        records.drop("day")
        .join(by_file, on=series, how="inner", nulls_equal=True)
        .with_columns(pl.col("_stamp").alias("file_stamp"))
        .drop("_stamp")
        .select(records.columns)
    )
    warehouse.coverage.upsert(copies)
    warehouse.coverage.compact()
    return len(copied)


def year_days(start: date, count: int, skip: set[date]) -> list[date]:
    """`count` days from `start`, without those in `skip` (already fetched)."""
    return [d for d in (start + timedelta(days=i) for i in range(count)) if d not in skip]
