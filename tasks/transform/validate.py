"""Row validation: good rows in the exact silver schema, the rest quarantined with reasons."""

from __future__ import annotations

from datetime import date
from functools import lru_cache

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
from tasks.transform.common import (
    collect,
    conform,
    quarantine_schema,
    shares_key,
    working_schema,
)

# A funding payment above 5% per event is not a market rate but a data error.
MAX_ABS_FUNDING_RATE = 0.05

Rule = tuple[pl.Expr, pl.Expr | str]


def _required(dataset: str) -> list[Rule]:
    nullable = nullable_columns(SILVER_MODELS[dataset])
    return [
        (pl.col(c).is_null(), f"{c} is null") for c in SILVER_SCHEMAS[dataset] if c not in nullable
    ]


def _finite(*columns: str) -> list[Rule]:
    return [(~pl.col(c).is_finite(), f"{c} not finite") for c in columns]


def _non_negative(*columns: str) -> list[Rule]:
    return [(pl.col(c) < 0, f"{c}<0") for c in columns]


def _inside_day(day: date) -> list[Rule]:
    start, end = day_bounds_ms(day)
    ms = pl.col("ts").dt.epoch("ms")
    outside = pl.format(
        "ts on {}, outside partition day {}", pl.col("ts").dt.date(), pl.lit(str(day))
    )
    return [((ms < start) | (ms >= end), outside)]


# Rows of one fetch that share a key but differ (exact repeats were dropped by `dedup_latest`).
CONFLICTING_DUPLICATE = "conflicting duplicate key"


def _duplicate_key(dataset: str, sorted_by_key: bool | None) -> list[Rule]:
    """None for `sorted_by_key`: the keys are known distinct, no row can share one."""
    if sorted_by_key is None:
        return []
    keys = list(SILVER_KEYS[dataset])
    shared = shares_key(keys) if sorted_by_key else pl.len().over(keys) > 1
    return [(shared, CONFLICTING_DUPLICATE)]


def _ohlcv_rules(interval: Interval | None, day: date, sorted_by_key: bool | None) -> list[Rule]:
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
        *_duplicate_key("ohlcv", sorted_by_key),
    ]
    if interval is not None:
        rules += [
            (pl.col("interval") != interval.value, f"interval is not {interval.value}"),
            (pl.col("ts").dt.epoch("ms") % interval.ms != 0, f"ts not aligned to {interval.value}"),
        ]
    return rules


def _funding_rules(day: date, sorted_by_key: bool | None) -> list[Rule]:
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
        *_duplicate_key("funding", sorted_by_key),
    ]


def _open_interest_rules(day: date, sorted_by_key: bool | None) -> list[Rule]:
    return [
        *_required("open_interest"),
        *_finite("open_interest", "open_interest_value"),
        *_non_negative("open_interest", "open_interest_value"),
        *_inside_day(day),
        *_duplicate_key("open_interest", sorted_by_key),
    ]


def _instrument_rules(sorted_by_key: bool | None) -> list[Rule]:
    fields = list(SILVER_SCHEMAS["instruments"])
    kinds = [k.value for k in MarketKind]
    return [
        *(
            (pl.col(c).is_null() | (pl.col(c).str.strip_chars() == ""), f"{c} is empty")
            for c in fields
        ),
        (~pl.col("kind").is_in(kinds), f"kind not in {'|'.join(kinds)}"),
        (pl.col("symbol") != pl.col("base") + pl.col("quote"), "symbol is not base+quote"),
        *_duplicate_key("instruments", sorted_by_key),
    ]


@lru_cache(maxsize=256)
def _reason(
    dataset: str, interval: Interval | None, day: date, sorted_by_key: bool | None
) -> pl.Expr:
    """Every failed rule's message joined by "; " (empty when the row passes), built once.
    `sorted_by_key` None: the keys are distinct, so the duplicate-key rule is left out (it
    would fail no row, and it is the dearest rule)."""
    if dataset == "ohlcv":
        rules = _ohlcv_rules(interval, day, sorted_by_key)
    elif dataset == "funding":
        rules = _funding_rules(day, sorted_by_key)
    elif dataset == "open_interest":
        rules = _open_interest_rules(day, sorted_by_key)
    elif dataset == "instruments":
        rules = _instrument_rules(sorted_by_key)
    else:
        raise ValueError(f"no validation rules for dataset {dataset!r}")
    messages = [  # a rule that is null (a null input) does not fail
        pl.when(bad).then(msg if isinstance(msg, pl.Expr) else pl.lit(msg)) for bad, msg in rules
    ]
    return pl.concat_str(messages, separator="; ", ignore_nulls=True).alias(QUARANTINE_REASON)


def validate(
    df: pl.DataFrame,
    dataset: str,
    *,
    interval: Interval | None,
    day: date,
    sorted_by_key: bool = False,
    unique_keys: bool = False,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split normalized, deduplicated rows into (good, quarantined).

    Good rows come in the exact silver schema; quarantined rows keep the silver columns,
    `fetched_at` and a `reason` listing every failed rule ("high<low; volume<0"). Every input
    row lands in exactly one of the two. Rows sharing a key (different content from the same
    fetch, e.g. two versions of a candle in one answer, see `dedup_latest`) are all
    quarantined as "conflicting duplicate key": silver cannot tell which one is right, and the
    coverage gap lets a later fetch repair it. `sorted_by_key`:
    the rows come sorted by the dataset's key, as `dedup_latest` leaves them, so shared keys
    are found between neighbours. `unique_keys`: no two rows share a key (as
    `dedup_latest_keyed` tells), so that rule is not evaluated.
    """
    conformed = conform(df, working_schema(dataset))
    distinct = unique_keys and conformed is df  # (a cast could make distinct keys equal)
    checked = conformed.with_columns(
        _reason(dataset, interval, day, None if distinct else sorted_by_key)
    )
    names = SILVER_SCHEMAS[dataset].names()
    reasons = checked.get_column(QUARANTINE_REASON)
    if not reasons.has_nulls() and not (reasons != "").any():  # every row passed (the usual)
        return checked.select(names), checked.clear()
    passed = pl.col(QUARANTINE_REASON) == ""
    good = collect(checked.lazy().filter(passed).select(names))
    return good, checked.filter(~passed)


def empty_quarantine(dataset: str) -> pl.DataFrame:
    return pl.DataFrame(schema=quarantine_schema(dataset))
