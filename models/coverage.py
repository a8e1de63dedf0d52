"""Coverage contract: what exists and what is missing, per partition and symbol.

One record per (layer, dataset, exchange, symbol, interval, day). It is the single source of
truth read by backfill planning, resume, `crypto-pipeline coverage` and run reports.

- `rows_expected`: candles/points on the expected grid for that day (null where no grid
  applies, e.g. instruments).
- `gaps`: missing grid ranges as [start, end) timestamps.
- `closed`: the day had ended when the data was fetched.
- `complete`: closed, the fetch for that day finished without error, and every expected row is
  present or its absence is a known gap of the source: the exchange served later rows of the
  day (a maintenance window), or the day is older than the settle period
  (`Settings.settle_days`). A day still missing rows otherwise (its last candles not yet
  published, rows quarantined for a source error) is incomplete and planning fetches it again.
- `gap_reason`: why a complete record has gaps (or none), or why an incomplete one is not
  complete yet; null when nothing is missing.
- `unavailable`: why the source has no data for that symbol and day, when it has none and
  never will (*unavailable at the source*): before the listing, beyond the source's depth
  (an endpoint serving only its last N days, and no archive file), delisted (the exchange
  dropped the instrument), not listed on the exchange. Such a record is never `complete`,
  and planning does not fetch it again (only `--force` does). Null otherwise.

A (symbol, day) is in one of three states: *complete*, *unavailable* (with its reason) or
*missing* (anything else: not fetched yet, incomplete, failed).
- `file_stamp`: the stamp (`storage.fs.Store.stamps`) of the partition file as written with
  this record, or null. While the file still carries it, the file is the one that was written
  whole, so planning need not read it back to check it (`Warehouse.damaged`).
"""

from __future__ import annotations

import polars as pl

UTC_MS = pl.Datetime("ms", "UTC")

GAP_STRUCT = pl.Struct({"start": UTC_MS, "end": UTC_MS})

COVERAGE_SCHEMA = pl.Schema(
    {
        "layer": pl.String(),
        "dataset": pl.String(),
        "exchange": pl.String(),
        "symbol": pl.String(),
        "interval": pl.String(),  # null when the dataset has no interval
        "day": pl.Date(),
        "rows_present": pl.Int64(),
        "rows_expected": pl.Int64(),
        "gaps": pl.List(GAP_STRUCT),
        "quarantined": pl.Int64(),
        "closed": pl.Boolean(),
        "complete": pl.Boolean(),
        "updated_at": UTC_MS,
        "file_stamp": pl.String(),
        "gap_reason": pl.String(),
        "unavailable": pl.String(),
    }
)

# Columns a record may lack (files written before they existed): they read back as null.
OPTIONAL_COLUMNS = ("file_stamp", "gap_reason", "unavailable")

COVERAGE_KEY = ("layer", "dataset", "exchange", "symbol", "interval", "day")
