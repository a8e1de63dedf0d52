"""Row validation: good rows in the exact silver schema, the rest quarantined with reasons."""

from __future__ import annotations

from datetime import date

import polars as pl

from models.dates import day_bounds_ms
from models.enums import Interval, MarketKind
from models.silver import (
    QUARANTINE_REASON,
    SILVER_KEYS,
    SILVER_MODELS,
    SILVER_SCHEMAS,
    nullable_columns,
)
from tasks.transform.common import conform, quarantine_schema, working_schema

# A funding payment above 5% per event is not a market rate but a data error.
MAX_ABS_FUNDING_RATE = 0.05

Rule = tuple[pl.Expr, pl.Expr | str]


def _required(dataset: str) -> list[Rule]:
    nullable = nullable_columns(SILVER_MODELS[dataset])
    return [
        (pl.col(c).is_null(), f"{c} is null") for c in SILVER_SCHEMAS[dataset] if c not in nullable
    ]


def _finite(*columns: str) -> list[Rule]:
    return [(pl.col(c).is_nan() | pl.col(c).is_infinite(), f"{c} not finite") for c in columns]


def _non_negative(*columns: str) -> list[Rule]:
    return [(pl.col(c) < 0, f"{c}<0") for c in columns]


def _inside_day(day: date) -> list[Rule]:
    start, end = day_bounds_ms(day)
    ms = pl.col("ts").dt.epoch("ms")
    outside = pl.format(
        "ts on {}, outside partition day {}", pl.col("ts").dt.date(), pl.lit(str(day))
    )
    return [((ms < start) | (ms >= end), outside)]


def _duplicate_key(dataset: str) -> list[Rule]:
    keys = list(SILVER_KEYS[dataset])
    return [(pl.len().over(keys) > 1, "duplicate key")]


def _ohlcv_rules(interval: Interval | None, day: date) -> list[Rule]:
    o, h, low, c = (pl.col(n) for n in ("open", "high", "low", "close"))
    rules: list[Rule] = [
        *_required("ohlcv"),
        *_finite("open", "high", "low", "close", "volume", "quote_volume"),
        (low <= 0, "low<=0"),
        (low > pl.min_horizontal(o, c), "low>min(open,close)"),
        (h < pl.max_horizontal(o, c), "high<max(open,close)"),
        (h < low, "high<low"),
        *_non_negative("volume", "quote_volume", "trades"),
        *_inside_day(day),
        *_duplicate_key("ohlcv"),
    ]
    if interval is not None:
        rules += [
            (pl.col("interval") != interval.value, f"interval is not {interval.value}"),
            (pl.col("ts").dt.epoch("ms") % interval.ms != 0, f"ts not aligned to {interval.value}"),
        ]
    return rules


def _funding_rules(day: date) -> list[Rule]:
    return [
        *_required("funding"),
        *_finite("funding_rate", "mark_price", "interval_hours", "apr"),
        (
            pl.col("funding_rate").abs() >= MAX_ABS_FUNDING_RATE,
            f"|funding_rate|>={MAX_ABS_FUNDING_RATE}",
        ),
        (pl.col("mark_price") <= 0, "mark_price<=0"),
        (pl.col("interval_hours") <= 0, "interval_hours<=0"),
        *_inside_day(day),
        *_duplicate_key("funding"),
    ]


def _open_interest_rules(day: date) -> list[Rule]:
    return [
        *_required("open_interest"),
        *_finite("open_interest", "open_interest_value"),
        *_non_negative("open_interest", "open_interest_value"),
        *_inside_day(day),
        *_duplicate_key("open_interest"),
    ]


def _instrument_rules() -> list[Rule]:
    fields = list(SILVER_SCHEMAS["instruments"])
    kinds = [k.value for k in MarketKind]
    return [
        *(
            (pl.col(c).is_null() | (pl.col(c).str.strip_chars() == ""), f"{c} is empty")
            for c in fields
        ),
        (~pl.col("kind").is_in(kinds), f"kind not in {'|'.join(kinds)}"),
        (pl.col("symbol") != pl.col("base") + pl.col("quote"), "symbol is not base+quote"),
        *_duplicate_key("instruments"),
    ]


def _rules(dataset: str, interval: Interval | None, day: date) -> list[Rule]:
    if dataset == "ohlcv":
        return _ohlcv_rules(interval, day)
    if dataset == "funding":
        return _funding_rules(day)
    if dataset == "open_interest":
        return _open_interest_rules(day)
    if dataset == "instruments":
        return _instrument_rules()
    raise ValueError(f"no validation rules for dataset {dataset!r}")


def reason_expr(rules: list[Rule]) -> pl.Expr:
    """Every failed rule's message joined by "; " (empty string when the row passes)."""
    messages = [
        pl.when(bad.fill_null(False)).then(msg if isinstance(msg, pl.Expr) else pl.lit(msg))
        for bad, msg in rules
    ]
    return pl.concat_str(messages, separator="; ", ignore_nulls=True).alias(QUARANTINE_REASON)


def validate(
    df: pl.DataFrame, dataset: str, *, interval: Interval | None, day: date
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split normalized, deduplicated rows into (good, quarantined).

    Good rows come in the exact silver schema; quarantined rows keep the silver columns,
    `fetched_at` and a `reason` listing every failed rule ("high<low; volume<0"). Every input
    row lands in exactly one of the two. Rows sharing a key (different content from the same
    fetch, see `dedup_latest`) are all quarantined as "duplicate key": silver cannot tell
    which one is right, and the coverage gap lets a later fetch repair it.
    """
    rows = conform(df, working_schema(dataset))
    checked = rows.with_columns(reason_expr(_rules(dataset, interval, day)))
    passed = pl.col(QUARANTINE_REASON) == ""
    good = conform(checked.filter(passed), SILVER_SCHEMAS[dataset])
    quarantined = conform(checked.filter(~passed), quarantine_schema(dataset))
    return good, quarantined


def empty_quarantine(dataset: str) -> pl.DataFrame:
    return pl.DataFrame(schema=quarantine_schema(dataset))
