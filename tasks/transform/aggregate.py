"""Cross-exchange OHLCV aggregation with robust outlier exclusion."""

from __future__ import annotations

import polars as pl

from models.errors import InputError
from models.silver import SILVER_SCHEMAS
from models.symbols import split_symbol
from tasks.transform.common import UTC_MS, conform

AGGREGATED_SCHEMA = SILVER_SCHEMAS["ohlcv_aggregated"]
EXCLUDED_SCHEMA = pl.Schema(
    {
        "symbol": pl.String(),
        "interval": pl.String(),
        "ts": UTC_MS,
        "exchange": pl.String(),
        "close": pl.Float64(),
        "median_close": pl.Float64(),
        "deviation": pl.Float64(),
        "reason": pl.String(),
    }
)
# Scale that makes the MAD a consistent estimator of the standard deviation.
_MAD_SCALE = 1.4826
_GROUP = ["symbol", "interval", "ts"]


def _quote_of(symbol: str | None) -> str | None:
    try:
        return split_symbol(symbol)[1] if symbol else None
    except InputError:
        return None


def _symbols_quoted_in(df: pl.DataFrame, quote: str) -> list[str]:
    symbols = df.get_column("symbol").unique().to_list()
    return [s for s in symbols if _quote_of(s) == quote]


def _flag_outliers(
    df: pl.DataFrame, mad_threshold: float, min_deviation: float, pair_deviation: float
) -> pl.DataFrame:
    close = pl.col("close")
    n = pl.len().over(_GROUP)
    median = close.median().over(_GROUP)
    frame = df.sort(*_GROUP, "exchange").with_columns(n.alias("_n"), median.alias("median_close"))
    dev = (close - pl.col("median_close")).abs()
    frame = frame.with_columns(
        (dev / pl.col("median_close")).alias("deviation"),
        (dev.median().over(_GROUP) * _MAD_SCALE).alias("_mad"),
        pl.col("volume").rank("ordinal", descending=True).over(_GROUP).alias("_volume_rank"),
    )
    limit = pl.max_horizontal(
        mad_threshold * pl.col("_mad"), min_deviation * pl.col("median_close")
    )
    many = (pl.col("_n") >= 3) & (dev > limit)
    # Two venues: their gap is twice each one's distance to the median (their mean).
    pair = (
        (pl.col("_n") == 2)
        & (2 * pl.col("deviation") > pair_deviation)
        & (pl.col("_volume_rank") == 2)
    )
    reason = (
        pl.when(many)
        .then(
            pl.format(
                "close {}% from the median of {} venues",
                (pl.col("deviation") * 100).round(3),
                pl.col("_n"),
            )
        )
        .when(pair)
        .then(pl.lit(f"close differs > {pair_deviation:.1%} from the higher-volume venue"))
    )
    return frame.with_columns(reason.alias("reason"))


def aggregate_ohlcv(
    df: pl.DataFrame,
    *,
    quote: str = "USDT",
    mad_threshold: float = 5.0,
    min_deviation: float = 0.005,
    pair_deviation: float = 0.02,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Silver OHLCV of several exchanges → (aggregated rows per symbol/interval/ts, excluded).

    Only symbols quoted in `quote` take part (USDT by default: USD and USDT are never mixed,
    so Coinbase's BTCUSD does not feed BTCUSDT). Outliers by close, per (symbol, interval, ts):
    with ≥3 venues a venue is excluded when its distance to the median close exceeds both
    `mad_threshold` × the scaled MAD (1.4826·MAD) and `min_deviation` × median (so near-equal
    venues with a tiny MAD are kept); with 2 venues differing by more than `pair_deviation`
    (relative), the lower-volume one is excluded. The median venue is never excluded.

    Of the included venues: open/close from the highest-volume venue (ties: exchange name),
    max high, min low, summed volume; `quote_volume` sums each venue's quote volume, using
    close × volume where a venue reports none; `vwap` = Σ(typical price (h+l+c)/3 × volume) /
    Σvolume, or the mean close when Σvolume is 0 (clipped to [min low, max high] against
    float rounding). One venue aggregates to itself.
    """
    if mad_threshold < 1:
        raise ValueError(f"mad_threshold must be at least 1, got {mad_threshold}")
    rows = df.filter(pl.col("symbol").is_in(_symbols_quoted_in(df, quote)))
    if rows.is_empty():
        return pl.DataFrame(schema=AGGREGATED_SCHEMA), pl.DataFrame(schema=EXCLUDED_SCHEMA)
    flagged = _flag_outliers(rows, mad_threshold, min_deviation, pair_deviation)
    excluded = conform(flagged.filter(pl.col("reason").is_not_null()), EXCLUDED_SCHEMA)
    included = flagged.filter(pl.col("reason").is_null())

    volume = pl.col("volume")
    typical = (pl.col("high") + pl.col("low") + pl.col("close")) / 3
    by_volume = [pl.col("volume"), pl.col("exchange")]
    aggregated = included.group_by(_GROUP).agg(
        pl.col("open").sort_by(by_volume, descending=[True, False]).first(),
        pl.col("high").max(),
        pl.col("low").min(),
        pl.col("close").sort_by(by_volume, descending=[True, False]).first(),
        volume.sum(),
        pl.coalesce(pl.col("quote_volume"), pl.col("close") * volume).sum().alias("quote_volume"),
        pl.when(volume.sum() > 0)
        .then((typical * volume).sum() / volume.sum())
        .otherwise(pl.col("close").mean())
        .clip(pl.col("low").min(), pl.col("high").max())
        .alias("vwap"),
        pl.len().cast(pl.Int64).alias("n_exchanges"),
        pl.col("exchange").sort().alias("exchanges"),
    )
    return conform(aggregated, AGGREGATED_SCHEMA).sort(_GROUP), excluded.sort(*_GROUP, "exchange")
