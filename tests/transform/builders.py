"""Hand-built bronze and silver frames for the transform tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from models.bronze import bronze_schema
from models.dates import day_bounds_ms, day_start
from models.enums import Dataset, Exchange, Interval
from models.silver import SILVER_SCHEMAS

DAY = date(2024, 3, 5)
FETCHED = datetime(2024, 3, 6, 0, 10, tzinfo=UTC)
NATIVE = {
    Exchange.BINANCE: lambda s: s,
    Exchange.OKX: lambda s: f"{s[:-4]}-{s[-4:]}",
    Exchange.COINBASE: lambda s: f"{s[:-4]}-{s[-4:]}",
}


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def at(day: date, minutes: int) -> datetime:
    return day_start(day) + timedelta(minutes=minutes)


def bronze(
    exchange: Exchange,
    dataset: Dataset,
    records: Sequence[dict[str, Any]],
    *,
    symbol: str = "BTCUSDT",
    interval: str | None = None,
    fetched_at: datetime = FETCHED,
    day: date = DAY,
) -> pl.DataFrame:
    """A bronze frame in the exact bronze schema; `records` hold raw fields (and overrides)."""
    start, end = day_bounds_ms(day)
    base = {
        "exchange": exchange.value,
        "symbol": symbol,
        "native_symbol": NATIVE[exchange](symbol),
        "interval": interval,
        "window_start": datetime.fromtimestamp(start / 1000, UTC),
        "window_end": datetime.fromtimestamp(end / 1000, UTC),
        "fetched_at": fetched_at,
    }
    rows = [{**base, **r} for r in records]
    return pl.DataFrame(rows, schema=bronze_schema(exchange, dataset), orient="row")


def random_walk(n: int, *, seed: int, start: float = 100.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return start * np.exp(np.cumsum(rng.normal(0, 0.001, n)))


def synthetic_bronze(
    exchange: Exchange,
    symbols: Sequence[str],
    day: date,
    interval: Interval = Interval.M1,
    *,
    seed: int = 0,
    basis: float = 0.0,
) -> pl.DataFrame:
    """A full day of plausible candles per symbol in `exchange`'s raw bronze format."""
    n = interval.per_day
    start, _ = day_bounds_ms(day)
    frames = []
    for k, symbol in enumerate(symbols):
        rng = np.random.default_rng(seed * 1000 + k)
        close = random_walk(n, seed=k, start=100.0 * (k + 1)) * (1 + basis)
        open_ = np.concatenate([[close[0]], close[:-1]])
        spread = np.abs(rng.normal(0, 0.0005, n)) * close
        high = np.maximum(open_, close) + spread
        low = np.minimum(open_, close) - spread
        volume = rng.gamma(2.0, 5.0, n)
        open_ms = start + np.arange(n, dtype=np.int64) * interval.ms
        frames.append(_raw(exchange, symbol, interval, open_ms, open_, high, low, close, volume))
    return pl.concat(frames)


def _raw(
    exchange: Exchange,
    symbol: str,
    interval: Interval,
    open_ms: np.ndarray,
    o: np.ndarray,
    h: np.ndarray,
    low: np.ndarray,
    c: np.ndarray,
    v: np.ndarray,
) -> pl.DataFrame:
    n = len(open_ms)
    fetched = datetime.fromtimestamp((int(open_ms[-1]) + interval.ms) / 1000 + 60, UTC)
    prov = pl.DataFrame(
        {
            "exchange": [exchange.value] * n,
            "symbol": [symbol] * n,
            "native_symbol": [NATIVE[exchange](symbol)] * n,
            "interval": [interval.value] * n,
        }
    ).with_columns(
        pl.lit(datetime.fromtimestamp(int(open_ms[0]) / 1000, UTC)).alias("window_start"),
        pl.lit(fetched).alias("window_end"),
        pl.lit(fetched).alias("fetched_at"),
    )
    text = {k: pl.Series(a).cast(pl.String) for k, a in {"o": o, "h": h, "l": low, "c": c}.items()}
    if exchange is Exchange.BINANCE:
        raw = pl.DataFrame(
            {
                "open_time": open_ms,
                "open": text["o"],
                "high": text["h"],
                "low": text["l"],
                "close": text["c"],
                "volume": pl.Series(v).cast(pl.String),
                "close_time": open_ms + interval.ms - 1,
                "quote_volume": pl.Series(v * c).cast(pl.String),
                "trades": (v * 10).astype(np.int64),
                "taker_buy_base": pl.Series(v / 2).cast(pl.String),
                "taker_buy_quote": pl.Series(v * c / 2).cast(pl.String),
                "ignore": ["0"] * n,
                "source": ["rest"] * n,
            }
        )
    elif exchange is Exchange.OKX:
        raw = pl.DataFrame(
            {
                "ts": pl.Series(open_ms).cast(pl.String),
                "o": text["o"],
                "h": text["h"],
                "l": text["l"],
                "c": text["c"],
                "vol": pl.Series(v).cast(pl.String),
                "volCcy": pl.Series(v * c).cast(pl.String),
                "volCcyQuote": pl.Series(v * c).cast(pl.String),
                "confirm": ["1"] * n,
            }
        )
    else:
        raw = pl.DataFrame(
            {"time": open_ms // 1000, "low": low, "high": h, "open": o, "close": c, "volume": v}
        )
    frame = pl.concat([prov, raw], how="horizontal")
    schema = bronze_schema(exchange, Dataset.OHLCV)
    return frame.select(schema.names()).cast(schema)


def silver_candles(records: Sequence[dict[str, Any]]) -> pl.DataFrame:
    """Silver OHLCV rows in the exact schema, with defaults for what a record leaves out."""
    base = {"exchange": "binance", "symbol": "BTCUSDT", "interval": "1m", "quote_volume": None}
    rows = [{**base, **r} for r in records]
    return pl.DataFrame(rows, schema=SILVER_SCHEMAS["ohlcv"], orient="row")


def fetched_candles(rows: Sequence[dict[str, Any]]) -> pl.DataFrame:
    """Silver candles of `DAY` (open 1, high 3, low 1, volume 1) from generated rows holding
    `symbol`, `minute`, `close` and `fetch` (minutes after `FETCHED`), with `fetched_at`."""
    candles = silver_candles(
        [
            {
                "symbol": r["symbol"],
                "ts": at(DAY, int(r["minute"])),
                "open": 1.0,
                "high": 3.0,
                "low": 1.0,
                "close": r["close"],
                "volume": 1.0,
            }
            for r in rows
        ]
    )
    fetched = [FETCHED + timedelta(minutes=int(r["fetch"])) for r in rows]
    return candles.with_columns(pl.Series("fetched_at", fetched, pl.Datetime("ms", "UTC")))
