"""Never degrade: whether a new version of a closed day is at least as good, per symbol.

A stored closed day changes for a symbol only to a version holding every valid row the stored
one holds (per key: revised values are welcome, a valid row lost or turned invalid is not).
A symbol whose new version fails that keeps its stored rows, and the refusal is named.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from models.silver import QUARANTINE_REASON


def refused_symbols(
    stored_good: pl.DataFrame,
    offered_good: pl.DataFrame,
    keys: Sequence[str],
    *,
    offered_quarantine: pl.DataFrame | None = None,
) -> dict[str, str]:
    """Per symbol whose valid stored rows are not all valid in the offered version: why
    ("2 valid stored rows lost, first at 2024-02-28 05:00:00+00:00: 1 now invalid (high<low),
    1 absent"). Symbols absent from the offered version lose every row."""
    keys = list(keys)
    if stored_good.is_empty():
        return {}
    lost = stored_good.select(keys).join(
        offered_good.select(keys), on=keys, how="anti", nulls_equal=True
    )
    if lost.is_empty():
        return {}
    if offered_quarantine is not None and not offered_quarantine.is_empty():
        reasons = offered_quarantine.select(*keys, QUARANTINE_REASON).unique(
            subset=keys, keep="first"
        )
        lost = lost.join(reasons, on=keys, how="left", nulls_equal=True)
    else:
        lost = lost.with_columns(pl.lit(None, pl.String).alias(QUARANTINE_REASON))
    summary = (
        lost.sort(keys)
        .group_by("symbol", maintain_order=True)
        .agg(
            pl.len().alias("lost"),
            pl.col("ts").first().alias("first"),
            pl.col(QUARANTINE_REASON).is_not_null().sum().alias("invalid"),
            pl.col(QUARANTINE_REASON).drop_nulls().first().alias("reason"),
        )
    )
    out = {}
    for symbol, count, first, invalid, reason in summary.iter_rows():
        parts = []
        if invalid:
            parts.append(f"{invalid} now invalid ({reason})")
        if count - invalid:
            parts.append(f"{count - invalid} absent")
        out[str(symbol)] = (
            f"{count} valid stored row(s) lost, first at {first}: {', '.join(parts)}; "
            "stored rows kept (never degrade)"
        )
    return out


def keep_stored(
    stored: pl.DataFrame, offered: pl.DataFrame, symbols: Sequence[str], sort: Sequence[str]
) -> pl.DataFrame:
    """`offered` with the rows of `symbols` replaced by their `stored` rows, sorted by `sort`."""
    if not symbols:
        return offered
    chosen = list(symbols)
    kept = stored.filter(pl.col("symbol").is_in(chosen))
    rest = offered.filter(~pl.col("symbol").is_in(chosen))
    return pl.concat([rest, kept], how="diagonal_relaxed").sort(list(sort), maintain_order=True)
