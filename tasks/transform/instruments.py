"""Instruments: bronze listings → silver identity rows (exchange, symbol, native id, kind)."""

from __future__ import annotations

import polars as pl

from models.enums import Exchange
from tasks.transform.common import FETCHED_AT, conform, working_schema

# Kind spellings an exchange object may carry, mapped to the silver kinds.
_KINDS = {"swap": "perp", "perpetual": "perp", "spot": "spot", "perp": "perp"}


def normalize_instruments(bronze: pl.DataFrame) -> pl.DataFrame:
    """Bronze instruments → silver columns plus `fetched_at`; the raw JSON stays in bronze.

    Asset codes are upper-cased and kinds mapped to spot|perp; anything else is left for
    validation to reject. `status` keeps the exchange's own word (TRADING, online, live).
    A Coinbase product is named by its id `BASE-QUOTE`, as the client names it
    (`clients.coinbase`): snapshots taken before it did carry `BTCAUCTION-USD` as BTCUSD (its
    currency fields), which would collide with `BTC-USD` and quarantine both listings.
    """
    schema = working_schema("instruments")
    if bronze.is_empty():
        return pl.DataFrame(schema=schema)
    kind = pl.col("kind").str.strip_chars().str.to_lowercase()
    exchange = pl.col("exchange").str.to_lowercase()
    base = pl.col("base").str.strip_chars().str.to_uppercase()
    quote = pl.col("quote").str.strip_chars().str.to_uppercase()
    parts = pl.col("native_symbol").str.to_uppercase().str.split("-")
    by_id = (exchange == Exchange.COINBASE.value) & (parts.list.len() == 2)
    by_id = by_id & (parts.list.first() != "") & (parts.list.last() != "")
    base = pl.when(by_id).then(parts.list.first()).otherwise(base)
    quote = pl.when(by_id).then(parts.list.last()).otherwise(quote)
    symbol = pl.when(by_id).then(base + quote).otherwise(pl.col("symbol").str.to_uppercase())
    rows = bronze.select(
        exchange.alias("exchange"),
        symbol.alias("symbol"),
        "native_symbol",
        base.alias("base"),
        quote.alias("quote"),
        kind.replace(_KINDS).alias("kind"),
        pl.col("status").str.strip_chars(),
        FETCHED_AT,
    )
    return conform(rows, schema)


# Listing history: silver instruments plus when each listing was seen and whether it still is.
HISTORY_SCHEMA = pl.Schema(
    {
        **{k: v for k, v in working_schema("instruments").items() if k != FETCHED_AT},
        "first_seen": pl.Datetime("ms", "UTC"),
        "last_seen": pl.Datetime("ms", "UTC"),
        "listed": pl.Boolean(),
    }
)
HISTORY_KEY = ("exchange", "symbol", "kind")


def merge_history(previous: pl.DataFrame | None, snapshot: pl.DataFrame) -> pl.DataFrame:
    """Listing history after one more snapshot (pure: Polars in, Polars out).

    `previous`: an earlier result of this function (or None); `snapshot`: one exchange's
    normalized, validated listing of one moment (silver instruments columns plus `fetched_at`,
    the snapshot time). Every listing ever seen is kept: one present in the snapshot takes
    its native id and status from it, `last_seen` the snapshot time and `listed` true (a
    first sighting also `first_seen`); one absent keeps its last row with `listed` false, so
    a delisted listing (OKX drops them) stays with the dates it existed. A snapshot older than
    a listing's `last_seen` never overwrites it (snapshots may come in any order).
    """
    seen = pl.col(FETCHED_AT)
    current = snapshot.select(
        *[c for c in HISTORY_SCHEMA.names() if c in snapshot.columns and c != FETCHED_AT],
        seen.alias("first_seen"),
        seen.alias("last_seen"),
        pl.lit(True).alias("listed"),
    )
    current = conform(current, HISTORY_SCHEMA).unique(HISTORY_KEY, keep="last", maintain_order=True)
    if previous is None or previous.is_empty():
        return current.sort(HISTORY_KEY)
    before = conform(previous, HISTORY_SCHEMA)
    both = pl.concat([before, current], how="vertical")
    first = pl.col("first_seen").min().over(HISTORY_KEY)
    merged = (
        both.sort([*HISTORY_KEY, "last_seen"], nulls_last=False)
        .with_columns(first.alias("first_seen"))
        .unique(HISTORY_KEY, keep="last", maintain_order=True)
    )
    # listed: present in the exchange's newest snapshot (whatever order they came in)
    newest = pl.col("last_seen").max().over("exchange")
    merged = merged.with_columns((pl.col("last_seen") >= newest).alias("listed"))
    return conform(merged, HISTORY_SCHEMA).sort(HISTORY_KEY)


def history_from_snapshots(snapshots: list[pl.DataFrame]) -> pl.DataFrame:
    """The listing history of every stored snapshot of one exchange, oldest first (each as
    `merge_history` takes it)."""
    history: pl.DataFrame | None = None
    for snapshot in sorted(snapshots, key=lambda f: f.get_column(FETCHED_AT).max() or 0):
        history = merge_history(history, snapshot)
    return history if history is not None else pl.DataFrame(schema=HISTORY_SCHEMA)
