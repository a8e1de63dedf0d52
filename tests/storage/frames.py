"""Realistic frames for every dataset shape, built from the contracts in `models`."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

from models.bronze import bronze_schema
from models.dates import day_start
from models.enums import Dataset, Exchange, Interval
from models.silver import SILVER_SCHEMAS

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT"]


def _times(day: date, step: timedelta, n: int) -> list[datetime]:
    start = day_start(day)
    return [start + i * step for i in range(n)]


def ohlcv(
    exchange: str,
    interval: str,
    day: date,
    symbols: list[str] = SYMBOLS,
    *,
    seed: int = 0,
    candles: int | None = None,
) -> pl.DataFrame:
    """Silver candles: a random walk per symbol, `candles` (default: a full day) each."""
    iv = Interval(interval)
    n = iv.per_day if candles is None else candles
    rng = np.random.default_rng(seed)
    parts = []
    for i, symbol in enumerate(symbols):
        base = 100.0 * (i + 1) * 7.3
        close = base * np.exp(np.cumsum(rng.normal(0, 0.0008, n)))
        open_ = np.concatenate([[base], close[:-1]])
        spread = np.abs(rng.normal(0, 0.0005, n)) * close
        volume = rng.gamma(2.0, 5.0, n)
        parts.append(
            pl.DataFrame(
                {
                    "exchange": exchange,
                    "symbol": symbol,
                    "interval": interval,
                    "ts": _times(day, iv.delta, n),
                    "open": open_,
                    "high": np.maximum(open_, close) + spread,
                    "low": np.minimum(open_, close) - spread,
                    "close": close,
                    "volume": volume,
                    "quote_volume": volume * close,
                    "trades": rng.integers(1, 500, n),
                }
            )
        )
    return pl.concat(parts).cast(SILVER_SCHEMAS["ohlcv"])


def aggregated(interval: str, day: date, symbols: list[str] = SYMBOLS[:2]) -> pl.DataFrame:
    candles = min(6, Interval(interval).per_day)
    base = ohlcv("binance", interval, day, symbols, candles=candles).drop("exchange", "trades")
    return base.with_columns(
        pl.col("close").alias("vwap"),
        pl.lit(2).alias("n_exchanges"),
        pl.lit(["binance", "okx"]).alias("exchanges"),
    ).cast(SILVER_SCHEMAS["ohlcv_aggregated"])


def funding(exchange: str, day: date, symbols: list[str] = SYMBOLS[:3]) -> pl.DataFrame:
    rows = [
        {
            "exchange": exchange,
            "symbol": s,
            "ts": t,
            "funding_rate": 0.0001 * (j + 1),
            "mark_price": None if j == 0 else 100.0 + j,
            "interval_hours": 8.0,
            "apr": 0.0001 * (j + 1) * 3 * 365,
        }
        for s in symbols
        for j, t in enumerate(_times(day, timedelta(hours=8), 3))
    ]
    return pl.DataFrame(rows, schema=SILVER_SCHEMAS["funding"])


def open_interest(exchange: str, day: date, symbols: list[str] = SYMBOLS[:3]) -> pl.DataFrame:
    rows = [
        {
            "exchange": exchange,
            "symbol": s,
            "ts": t,
            "open_interest": 1000.0 + j,
            "open_interest_value": None if j % 5 == 0 else 1e6 + j,
        }
        for s in symbols
        for j, t in enumerate(_times(day, timedelta(hours=1), 24))
    ]
    return pl.DataFrame(rows, schema=SILVER_SCHEMAS["open_interest"])


def instruments(exchange: str, symbols: list[str] = SYMBOLS) -> pl.DataFrame:
    rows = [
        {
            "exchange": exchange,
            "symbol": s,
            "native_symbol": s[:-4] + "-USDT",
            "base": s[:-4],
            "quote": "USDT",
            "kind": "spot",
            "status": "trading",
        }
        for s in symbols
    ]
    return pl.DataFrame(rows, schema=SILVER_SCHEMAS["instruments"])


def bronze(exchange: Exchange, dataset: Dataset, interval: str | None, day: date) -> pl.DataFrame:
    """Bronze rows with the exchange's raw field names and types (values are placeholders)."""
    schema = bronze_schema(exchange, dataset)
    n = 4
    start = day_start(day)
    columns: dict[str, list[object]] = {}
    for name, dtype in schema.items():
        if name == "exchange":
            columns[name] = [exchange.value] * n
        elif name == "interval":
            columns[name] = [interval] * n
        elif name == "symbol":
            columns[name] = ["BTCUSDT", "ETHUSDT"] * (n // 2)
        elif dtype == pl.String():
            columns[name] = [f"{name}-{i}" for i in range(n)]
        elif dtype == pl.Int64():
            columns[name] = [int(start.timestamp() * 1000) + i for i in range(n)]
        elif dtype == pl.Float64():
            columns[name] = [float(i) for i in range(n)]
        else:
            columns[name] = [start + timedelta(minutes=i) for i in range(n)]
    return pl.DataFrame(columns, schema=schema)
