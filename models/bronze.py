"""Bronze contracts: raw exchange rows as sent, plus provenance columns.

A bronze frame holds one (exchange, dataset[, interval]) for any number of symbols. Raw fields
keep the exchange's own names and JSON types (strings stay strings); provenance columns are
common to all. Positional arrays (klines, candles) get the names documented by the exchange.
"""

from __future__ import annotations

import polars as pl

from models.enums import Dataset, Exchange

UTC_MS = pl.Datetime("ms", "UTC")

# Provenance columns present in every bronze frame, in this order, before the raw fields.
PROVENANCE: dict[str, pl.DataType] = {
    "exchange": pl.String(),
    "symbol": pl.String(),  # unified, e.g. BTCUSDT
    "native_symbol": pl.String(),  # BTCUSDT / BTC-USDT / BTC-USDT-SWAP
    "interval": pl.String(),  # candle interval or OI period; null for funding/instruments
    "window_start": UTC_MS,  # request window [start, end)
    "window_end": UTC_MS,
    "fetched_at": UTC_MS,
}

_S = pl.String()
_I = pl.Int64()
_F = pl.Float64()

RAW_FIELDS: dict[tuple[Exchange, Dataset], dict[str, pl.DataType]] = {
    # GET /api/v3/klines and /fapi/v1/klines: 12-field arrays (plus `source`).
    (Exchange.BINANCE, Dataset.OHLCV): {
        "open_time": _I,
        "open": _S,
        "high": _S,
        "low": _S,
        "close": _S,
        "volume": _S,
        "close_time": _I,
        "quote_volume": _S,
        "trades": _I,
        "taker_buy_base": _S,
        "taker_buy_quote": _S,
        "ignore": _S,
        # Where the row came from: "rest", or "archive:{file}:{sha256[:16]}" (data.binance.vision).
        "source": _S,
    },
    # GET /api/v5/market/history-candles: [ts,o,h,l,c,vol,volCcy,volCcyQuote,confirm] strings.
    (Exchange.OKX, Dataset.OHLCV): {
        "ts": _S,
        "o": _S,
        "h": _S,
        "l": _S,
        "c": _S,
        "vol": _S,
        "volCcy": _S,
        "volCcyQuote": _S,
        "confirm": _S,
    },
    # GET /products/{id}/candles: [time(s), low, high, open, close, volume] numbers.
    (Exchange.COINBASE, Dataset.OHLCV): {
        "time": _I,
        "low": _F,
        "high": _F,
        "open": _F,
        "close": _F,
        "volume": _F,
    },
    # GET /fapi/v1/fundingRate objects (markPrice may be "" on old rows).
    (Exchange.BINANCE, Dataset.FUNDING): {
        "fundingTime": _I,
        "fundingRate": _S,
        "markPrice": _S,
        "source": _S,  # "rest" or "archive:{file}:{sha256[:16]}" (no markPrice in the archive)
    },
    # GET /api/v5/public/funding-rate-history objects.
    (Exchange.OKX, Dataset.FUNDING): {
        "fundingTime": _S,
        "fundingRate": _S,
        "realizedRate": _S,
        "method": _S,
        "formulaType": _S,
        "instType": _S,
    },
    # GET /futures/data/openInterestHist objects (source=history) and
    # GET /fapi/v1/openInterest (source=snapshot: time->timestamp, openInterest->sumOpenInterest).
    (Exchange.BINANCE, Dataset.OPEN_INTEREST): {
        "timestamp": _I,
        "sumOpenInterest": _S,
        "sumOpenInterestValue": _S,
        "source": _S,
    },
    # OKX rubik open-interest history arrays [ts, oi, oiCcy, oiUsd] (source=history) and
    # GET /api/v5/public/open-interest objects (source=snapshot).
    (Exchange.OKX, Dataset.OPEN_INTEREST): {
        "ts": _S,
        "oi": _S,
        "oiCcy": _S,
        "oiUsd": _S,
        "source": _S,
    },
}

# Instruments: the normalized identity of each listing plus the exchange's object as JSON.
INSTRUMENT_FIELDS: dict[str, pl.DataType] = {
    "base": _S,
    "quote": _S,
    "kind": _S,
    "status": _S,
    "raw": _S,
}
for _ex in Exchange:
    RAW_FIELDS[(_ex, Dataset.INSTRUMENTS)] = dict(INSTRUMENT_FIELDS)


def bronze_schema(exchange: Exchange, dataset: Dataset) -> pl.Schema:
    """Full bronze schema (provenance + raw fields) for one exchange and dataset."""
    try:
        raw = RAW_FIELDS[(exchange, dataset)]
    except KeyError:
        raise ValueError(f"{exchange} offers no {dataset} data") from None
    return pl.Schema({**PROVENANCE, **raw})


def empty_bronze(exchange: Exchange, dataset: Dataset) -> pl.DataFrame:
    return pl.DataFrame(schema=bronze_schema(exchange, dataset))
