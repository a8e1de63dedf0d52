"""Cross-exchange OHLCV aggregation with robust outlier exclusion."""

from __future__ import annotations

from functools import lru_cache

import polars as pl

from models.errors import InputError
from models.silver import SILVER_SCHEMAS
from models.symbols import split_symbol
from tasks.transform.common import UTC_MS, collect, conform

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
# Rows are sorted by (symbol, interval, ts, exchange) and `_g` numbers the (symbol, interval,
# ts) runs, so that per-group work keys on one integer column instead of three. `_run` is the
# same number flagged as sorted, which lets windows (counts, medians) work on contiguous
# slices. The sums group by `_g`, a cumulative sum Polars does not know to be sorted: slice
# groups add floats in another order than a hashed group_by and would round differently.
_G, _RUN = "_g", "_run"


@lru_cache(maxsize=1024)
def _quote_of(symbol: str | None) -> str | None:
    try:
        return split_symbol(symbol)[1] if symbol else None
    except InputError:
        return None


def _grouped(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Rows sorted by group and exchange, with their group's run number `_g` and `_vpos`, the
    row's rank by volume (descending; ties by position, so by exchange; null volumes 0).

    A stable sort: silver frames arrive as a few runs already in (symbol, ts) order, which a
    stable sort merges cheaply. Null keys compare equal, as they group in `over`/`group_by`.
    Within a group, the lowest `_vpos` is the first row of `sort_by(volume, descending)`.
    """
    new_group = pl.any_horizontal([pl.col(c).ne_missing(pl.col(c).shift(1)) for c in _GROUP])
    by_volume = pl.col("volume").rank("ordinal", descending=True).fill_null(0)
    return (
        rows.sort(*_GROUP, "exchange", maintain_order=True)
        .with_columns(new_group.cum_sum().alias(_G))
        .with_columns(pl.col(_G).set_sorted().alias(_RUN), by_volume.alias("_vpos"))
    )


def _pair_second() -> pl.Expr:
    """In a group of two rows: `volume.rank("ordinal", descending=True).over(group) == 2`.

    Ranks skip null volumes; otherwise the row of the higher `_vpos` ranks 2nd.
    """
    follows = pl.col(_G) == pl.col(_G).shift(1)

    def partner(name: str) -> pl.Expr:
        col = pl.col(name)
        return pl.when(follows).then(col.shift(1)).otherwise(col.shift(-1))

    both = pl.col("volume").is_not_null() & partner("volume").is_not_null()
    return both & (pl.col("_vpos") > partner("_vpos"))


def _flag_outliers(
    rows: pl.LazyFrame, mad_threshold: float, min_deviation: float, pair_deviation: float
) -> pl.LazyFrame:
    """Grouped rows with `_n`, `median_close`, `deviation`, `_many` and `_excluded`."""
    close, median = pl.col("close"), pl.col("median_close")
    dev = (close - median).abs()
    n = pl.col("_n")
    limit = pl.max_horizontal(mad_threshold * pl.col("_mad"), min_deviation * median)
    many = ((n >= 3) & (dev > limit)).fill_null(False)
    # Two venues: their gap is twice each one's distance to the median (their mean).
    pair = (n == 2) & (2 * pl.col("deviation") > pair_deviation) & _pair_second()
    return (
        _grouped(rows)
        .with_columns(
            pl.len().over(_RUN).alias("_n"), close.median().over(_RUN).alias("median_close")
        )
        .with_columns(
            (dev / median).alias("deviation"), (dev.median().over(_RUN) * _MAD_SCALE).alias("_mad")
        )
        .with_columns(many.alias("_many"), (many | pair.fill_null(False)).alias("_excluded"))
    )


def _excluded(flagged: pl.DataFrame, pair_deviation: float) -> pl.DataFrame:
    """The excluded venues with their reason (formatted for these rows only)."""
    reason = (
        pl.when(pl.col("_many"))
        .then(
            pl.format(
                "close {}% from the median of {} venues",
                (pl.col("deviation") * 100).round(3),
                pl.col("_n"),
            )
        )
        .otherwise(pl.lit(f"close differs > {pair_deviation:.1%} from the higher-volume venue"))
    )
    rows = flagged.lazy().filter(pl.col("_excluded")).with_columns(reason.alias("reason"))
    return collect(conform(rows, EXCLUDED_SCHEMA))


def _aggregate(included: pl.LazyFrame) -> pl.LazyFrame:
    """One row per group of the included venues (groups keep their sorted order).

    Row-wise terms are computed before grouping, so that a group only sums, and `vwap` is
    derived from the group's sums.
    """
    volume = pl.col("volume")
    typical = (pl.col("high") + pl.col("low") + pl.col("close")) / 3
    quote_volume = pl.coalesce(pl.col("quote_volume"), pl.col("close") * volume)
    top = pl.col("_vpos").arg_min()  # highest volume, ties by exchange name
    sums = (
        included.with_columns((typical * volume).alias("_tpv"), quote_volume.alias("quote_volume"))
        .group_by(_G, maintain_order=True)
        .agg(
            pl.col(_GROUP).first(),
            pl.col("open").get(top),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").get(top),
            volume.sum(),
            pl.col("quote_volume").sum(),
            pl.col("_tpv").sum(),
            pl.col("close").mean().alias("_mean_close"),
            pl.len().cast(pl.Int64).alias("n_exchanges"),
            pl.col("exchange").alias("exchanges"),  # rows are in exchange order in a group
        )
    )
    vwap = (
        pl.when(volume > 0)
        .then(pl.col("_tpv") / volume)
        .otherwise(pl.col("_mean_close"))
        .clip(pl.col("low"), pl.col("high"))
    )
    return conform(sums.with_columns(vwap.alias("vwap")), AGGREGATED_SCHEMA)


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
    symbols = df.get_column("symbol").unique()
    quoted = [s for s in symbols.to_list() if _quote_of(s) == quote]
    rows = df if len(quoted) == len(symbols) else df.filter(pl.col("symbol").is_in(quoted))
    if rows.is_empty():
        return pl.DataFrame(schema=AGGREGATED_SCHEMA), pl.DataFrame(schema=EXCLUDED_SCHEMA)
    flagged = collect(_flag_outliers(rows.lazy(), mad_threshold, min_deviation, pair_deviation))
    excluded = _excluded(flagged, pair_deviation)
    aggregated = collect(_aggregate(flagged.lazy().filter(~pl.col("_excluded"))))
    return aggregated, excluded
