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
_G, _RUN, _ROW = "_g", "_run", "_row"


@lru_cache(maxsize=1024)
def _quote_of(symbol: str | None) -> str | None:
    try:
        return split_symbol(symbol)[1] if symbol else None
    except InputError:
        return None


def _runs(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Rows sorted by group and exchange, with their group's run number `_g` (also as the
    sorted `_RUN`) and its size `_n`.

    A stable sort: silver frames arrive as a few runs already in (symbol, ts) order, which a
    stable sort merges cheaply. Null keys compare equal, as they group in `over`/`group_by`.
    """
    new_group = pl.any_horizontal([pl.col(c).ne_missing(pl.col(c).shift(1)) for c in _GROUP])
    return (
        rows.sort(*_GROUP, "exchange", maintain_order=True)
        .with_columns(new_group.cum_sum().alias(_G))
        .with_columns(pl.col(_G).set_sorted().alias(_RUN))
        .with_columns(pl.len().over(_RUN).alias("_n"))
    )


def _volume_order() -> pl.Expr:
    """`_vpos`: the row's rank by volume (descending; ties by position, so by exchange; null
    volumes 0). Within a group, the lowest `_vpos` is the first row of
    `sort_by(volume, descending)`; only its order within a group is ever read."""
    return pl.col("volume").rank("ordinal", descending=True).fill_null(0).alias("_vpos")


def _partner(name: str) -> pl.Expr:
    """In a group of two rows, the other row's value of `name`."""
    col = pl.col(name)
    return pl.when(pl.col(_G) == pl.col(_G).shift(1)).then(col.shift(1)).otherwise(col.shift(-1))


def _pair_second() -> pl.Expr:
    """In a group of two rows: `volume.rank("ordinal", descending=True).over(group) == 2`.

    Ranks skip null volumes; otherwise the row of the higher `_vpos` ranks 2nd.
    """
    both = pl.col("volume").is_not_null() & _partner("volume").is_not_null()
    return both & (pl.col("_vpos") > _partner("_vpos"))


def _distance() -> pl.Expr:
    """The row's close's distance to its group's median close."""
    return (pl.col("close") - pl.col("median_close")).abs()


def _flags(
    mad_threshold: float, min_deviation: float, pair_deviation: float, second: pl.Expr
) -> tuple[pl.Expr, pl.Expr]:
    """`_many` and `_excluded` from `_n`, `median_close`, `deviation`, `_mad` and `second`
    (in a group of two, whether the row is the lower-volume one)."""
    n, median = pl.col("_n"), pl.col("median_close")
    limit = pl.max_horizontal(mad_threshold * pl.col("_mad"), min_deviation * median)
    many = ((n >= 3) & (_distance() > limit)).fill_null(False)
    # Two venues: their gap is twice each one's distance to the median (their mean).
    pair = (n == 2) & (2 * pl.col("deviation") > pair_deviation) & second
    return many.alias("_many"), (many | pair.fill_null(False)).alias("_excluded")


def _flag_outliers(
    runs: pl.LazyFrame, mad_threshold: float, min_deviation: float, pair_deviation: float
) -> pl.LazyFrame:
    """`_runs` rows with `_vpos`, `median_close`, `deviation`, `_mad`, `_many`, `_excluded`,
    from windows over the groups (any size)."""
    median = pl.col("median_close")
    return (
        runs.with_columns(
            _volume_order(), pl.col("close").median().over(_RUN).alias("median_close")
        )
        .with_columns(
            (_distance() / median).alias("deviation"),
            (_distance().median().over(_RUN) * _MAD_SCALE).alias("_mad"),
        )
        .with_columns(*_flags(mad_threshold, min_deviation, pair_deviation, _pair_second()))
    )


# Groups of at most this many venues are flagged from their neighbouring rows (`_flag_small`).
SMALL_GROUP = 3


def _member(name: str, j: int) -> pl.Expr:
    """The value of `name` in the `j`-th row (0-based) of the row's group, for groups of at
    most `SMALL_GROUP` rows (a neighbour's value where the group has no such row)."""
    col, pos = pl.col(name), pl.col("_pos")
    return (
        pl.when(pos == 0)
        .then(col.shift(-j))
        .when(pos == 1)
        .then(col.shift(1 - j))
        .otherwise(col.shift(2 - j))
    )


def _middle(a: pl.Expr, b: pl.Expr, c: pl.Expr) -> pl.Expr:
    """The middle one of three numbers (one of them, unchanged: the median of three)."""
    return pl.max_horizontal(pl.min_horizontal(a, b), pl.min_horizontal(pl.max_horizontal(a, b), c))


def _flag_small(
    runs: pl.LazyFrame, mad_threshold: float, min_deviation: float, pair_deviation: float
) -> pl.LazyFrame:
    """`_flag_outliers` of groups of at most `SMALL_GROUP` rows whose closes and volumes are
    positive numbers (`_plain`), from the neighbouring rows instead of windows: equal column
    for column where the columns are read. A window over many tiny groups costs as much as
    over a few large ones (~30 ms a day of 100 symbols each), and a group is one venue per
    exchange.

    The median of two closes is Polars' linear interpolation, `0.5 * (high - low) + low`; of
    three, the middle one (so is the MAD's median of three distances). `_vpos` is the row's
    place by volume in its group (descending; ties by position), the order the rank gives;
    the MAD, read only in groups of three, is null in smaller ones.
    """
    n, close = pl.col("_n"), pl.col("close")
    g = pl.col(_G)
    # the row's place in its group: how many of the two rows before it are of the group
    pos = pl.sum_horizontal([(g == g.shift(k)).fill_null(False).cast(pl.UInt32) for k in (1, 2)])
    c0, c1, c2 = (_member("close", j) for j in range(3))
    low, high = pl.min_horizontal(c0, c1), pl.max_horizontal(c0, c1)
    middle = (
        pl.when(n == 1)
        .then(close)
        .when(n == 2)
        .then(0.5 * (high - low) + low)
        .otherwise(_middle(c0, c1, c2))
    )
    # rows of the group ahead of this one by volume: higher, or equal and earlier
    volume, here = pl.col("volume"), pl.col("_pos")
    volumes = [_member("volume", j) for j in range(3)]
    ahead = [
        (here != j) & (n > j) & ((v > volume) | ((v == volume) & (here > j)))
        for j, v in enumerate(volumes)
    ]
    median = pl.col("median_close")
    distances = [(c - median).abs() for c in (c0, c1, c2)]
    mad = pl.when(n == 3).then(_middle(*distances) * _MAD_SCALE)
    second = pl.col("_vpos") == 1
    return (
        runs.with_columns(pos.alias("_pos"))
        .with_columns(
            pl.sum_horizontal(ahead).cast(pl.UInt32).alias("_vpos"), middle.alias("median_close")
        )
        .with_columns((_distance() / median).alias("deviation"), mad.cast(pl.Float64).alias("_mad"))
        .with_columns(*_flags(mad_threshold, min_deviation, pair_deviation, second))
        .drop("_pos")
    )


def _plain(rows: pl.DataFrame) -> bool:
    """Whether every close and volume is a positive number (volume: or zero), as validated
    silver holds: then `_flag_small` equals the windows' answer."""
    close, volume = pl.col("close"), pl.col("volume")
    checks = rows.select(
        (close.is_not_null() & close.is_finite() & (close > 0)).all(),
        (volume.is_not_null() & volume.is_finite() & (volume >= 0)).all(),
    )
    return all(checks.row(0))


def _flagged(
    rows: pl.DataFrame,
    mad_threshold: float,
    min_deviation: float,
    pair_deviation: float,
    *,
    small_apart: bool = True,
) -> pl.DataFrame:
    """Rows in group order with their outlier flags: groups of up to `SMALL_GROUP` venues by
    `_flag_small` (when `small_apart` and the rows are `_plain`), the others by windows."""
    args = (mad_threshold, min_deviation, pair_deviation)
    runs = collect(_runs(rows.lazy()))
    if not small_apart or not _plain(rows):
        return collect(_flag_outliers(runs.lazy(), *args))
    small = pl.col("_n") <= SMALL_GROUP
    if runs.select(small.all()).item():
        return collect(_flag_small(runs.lazy(), *args))
    runs = runs.with_row_index(_ROW)
    few = collect(_flag_small(runs.lazy().filter(small), *args))
    many = collect(_flag_outliers(runs.lazy().filter(~small), *args))
    # Each group lies whole in one part: the rows' order is restored by their index (not by
    # `_g`: a sort would flag it sorted, and the sums' group_by would then add in slices).
    both = pl.concat([few, many.select(few.columns)])
    return both.sort(_ROW).drop(_ROW)


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
    flagged = _flagged(rows, mad_threshold, min_deviation, pair_deviation)
    excluded = _excluded(flagged, pair_deviation)
    aggregated = collect(_aggregate(flagged.lazy().filter(~pl.col("_excluded"))))
    return aggregated, excluded
