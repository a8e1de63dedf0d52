"""Decoding documented sample payloads into bronze frames, and mapping error answers."""

from __future__ import annotations

import orjson
import pytest

from clients.base import Request, Retryable
from clients.binance import BinanceClient
from clients.binance import _listing as binance_listing
from clients.coinbase import CoinbaseClient
from clients.frames import DecodeError, Provenance, instruments_frame, objects_frame, rows_frame
from clients.okx import OkxClient
from clients.okx import _listing as okx_listing
from clients.protocol import BadRequest, ExchangeUnavailable, RateLimited, UnknownSymbol
from models.bronze import bronze_schema
from models.enums import Dataset, Exchange, MarketKind

# Samples from the exchanges' documentation (reference/exchange-apis.md).
BINANCE_KLINES = (
    b'[[1499040000000,"0.01634790","0.80000000","0.01575800","0.01577100","148976.11427815",'
    b'1499644799999,"2434.19055334",308,"1756.87402397","28.46694368","0"]]'
)
OKX_CANDLES = (
    b'{"code":"0","msg":"","data":[["1678928760000","24341.4","24344","24313.2","24323","628",'
    b'"2.5819","62800","0"],["1678928700000","24324.1","24347.6","24321.7","24341.4","2565",'
    b'"10.5401","256500","1"]]}'
)
COINBASE_CANDLES = (
    b"[[1591514160,0.02507,0.02507,0.02507,0.02507,0.02816506],"
    b"[1591514100,0.02507,0.02507,0.02507,0.02507,1.63830323]]"
)
BINANCE_FUNDING = (
    b'[{"symbol":"BTCUSDT","fundingRate":"-0.03750000","fundingTime":1570608000000,'
    b'"markPrice":"34287.54619963"},{"symbol":"BTCUSDT","fundingRate":"0.00010000",'
    b'"fundingTime":1570636800000,"markPrice":""}]'
)
OKX_FUNDING = (
    b'{"code":"0","msg":"","data":[{"formulaType":"noRate","fundingRate":"0.0000746604960499",'
    b'"fundingTime":"1703059200000","instId":"BTC-USDT-SWAP","instType":"SWAP",'
    b'"method":"next_period","realizedRate":"0.0000746572360545"}]}'
)
BINANCE_OI_HIST = (
    b'[{"symbol":"BTCUSDT","sumOpenInterest":"20403.63700000",'
    b'"sumOpenInterestValue":"150570784.07809979","timestamp":"1583127900000"}]'
)
OKX_RUBIK = b'{"code":"0","msg":"","data":[["1701417600000","731377.57500501","111","8888888"]]}'


def prov(exchange: Exchange, interval: str | None = "1m") -> Provenance:
    return Provenance(exchange, "BTCUSDT", "BTC-USDT", interval, 0, 86_400_000, 1_700_000_000_000)


@pytest.mark.parametrize(
    ("exchange", "body", "unwrap"),
    [
        (Exchange.BINANCE, BINANCE_KLINES, False),
        (Exchange.OKX, OKX_CANDLES, True),
        (Exchange.COINBASE, COINBASE_CANDLES, False),
    ],
)
def test_candles_follow_bronze_schema(exchange: Exchange, body: bytes, unwrap: bool) -> None:
    payload = orjson.loads(body)
    rows = payload["data"] if unwrap else payload
    frame = rows_frame(rows, Dataset.OHLCV, prov(exchange))
    assert frame.schema == bronze_schema(exchange, Dataset.OHLCV)
    assert frame.height == len(rows)
    assert frame["exchange"].unique().to_list() == [exchange.value]
    assert frame["window_end"][0].isoformat() == "1970-01-02T00:00:00+00:00"


def test_raw_values_are_kept_as_sent() -> None:
    frame = rows_frame(orjson.loads(BINANCE_KLINES), Dataset.OHLCV, prov(Exchange.BINANCE))
    row = frame.row(0, named=True)
    assert row["open"] == "0.01634790" and row["trades"] == 308 and row["ignore"] == "0"
    okx = rows_frame(orjson.loads(OKX_CANDLES)["data"], Dataset.OHLCV, prov(Exchange.OKX))
    assert okx["confirm"].to_list() == ["0", "1"]
    assert okx["h"][0] == "24344"


def test_objects_keep_empty_strings_and_fill_absent_fields() -> None:
    p = prov(Exchange.BINANCE, None)
    frame = objects_frame(orjson.loads(BINANCE_FUNDING), Dataset.FUNDING, p)
    assert frame.schema == bronze_schema(Exchange.BINANCE, Dataset.FUNDING)
    assert frame["markPrice"].to_list() == ["34287.54619963", ""]
    okx = objects_frame(
        orjson.loads(OKX_FUNDING)["data"], Dataset.FUNDING, prov(Exchange.OKX, None)
    )
    assert okx.schema == bronze_schema(Exchange.OKX, Dataset.FUNDING)
    assert okx["realizedRate"][0] == "0.0000746572360545"


def test_open_interest_history_and_snapshot_shapes() -> None:
    p = prov(Exchange.BINANCE, "1h")
    hist = objects_frame(
        orjson.loads(BINANCE_OI_HIST), Dataset.OPEN_INTEREST, p, constants={"source": "history"}
    )
    assert hist["timestamp"].to_list() == [1583127900000]  # sent as a string, typed Int64
    snap = objects_frame(
        [{"openInterest": "10659.509", "symbol": "BTCUSDT", "time": 1589437530011}],
        Dataset.OPEN_INTEREST,
        p,
        rename={"timestamp": "time", "sumOpenInterest": "openInterest"},
        constants={"source": "snapshot"},
    )
    assert snap.row(0, named=True)["sumOpenInterest"] == "10659.509"
    assert snap["sumOpenInterestValue"].to_list() == [None]
    rubik = rows_frame(
        orjson.loads(OKX_RUBIK)["data"],
        Dataset.OPEN_INTEREST,
        prov(Exchange.OKX, "1h"),
        arity=4,
        constants={"source": "history"},
    )
    assert rubik.schema == bronze_schema(Exchange.OKX, Dataset.OPEN_INTEREST)
    assert rubik.row(0, named=True)["source"] == "history"


def test_empty_pages_give_empty_frames_with_the_schema() -> None:
    for exchange in Exchange:
        frame = rows_frame([], Dataset.OHLCV, prov(exchange))
        assert frame.height == 0
        assert frame.schema == bronze_schema(exchange, Dataset.OHLCV)


@pytest.mark.parametrize(
    "rows",
    [
        [[1, "2"]],  # wrong arity
        {"code": -1121},  # not a list
        [[1499040000000, 1, "h", "l", "c", "v", 1, "q", 1, "b", "q", "0"]],  # number for a string
    ],
)
def test_malformed_pages_raise_decode_error(rows: object) -> None:
    with pytest.raises(DecodeError):
        rows_frame(rows, Dataset.OHLCV, prov(Exchange.BINANCE))  # type: ignore[arg-type]


def test_instrument_listings_unify_symbols() -> None:
    spot = binance_listing(
        {"symbol": "ETHBTC", "status": "TRADING", "baseAsset": "ETH", "quoteAsset": "BTC"},
        MarketKind.SPOT,
    )
    assert (spot.symbol, spot.native_symbol) == ("ETHBTC", "ETHBTC")
    swap = okx_listing(
        {
            "instId": "BTC-USDT-SWAP",
            "baseCcy": "",
            "quoteCcy": "",
            "settleCcy": "USDT",
            "ctValCcy": "BTC",
            "ctType": "linear",
            "uly": "BTC-USDT",
            "state": "live",
        },
        MarketKind.PERP,
    )
    assert swap is not None and (swap.symbol, swap.base, swap.quote) == ("BTCUSDT", "BTC", "USDT")
    inverse = {"instId": "BTC-USD-SWAP", "ctType": "inverse", "settleCcy": "BTC"}
    assert okx_listing(inverse, MarketKind.PERP) is None
    frame = instruments_frame(Exchange.OKX, [swap], 1)
    assert frame.schema == bronze_schema(Exchange.OKX, Dataset.INSTRUMENTS)
    assert orjson.loads(frame["raw"][0])["instId"] == "BTC-USDT-SWAP"


# -- error mapping -------------------------------------------------------------------------

REQ = Request("api", "/api/v3/klines", {"symbol": "NOPE"}, symbol="NOPE")


def classify(client, status: int, body: bytes, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return client.classify(REQ, status, headers or {}, body)


def test_binance_error_mapping() -> None:
    client = BinanceClient()
    with pytest.raises(UnknownSymbol) as unknown:
        classify(client, 400, b'{"code":-1121,"msg":"Invalid symbol."}')
    assert unknown.value.code == -1121 and "binance" in str(unknown.value)
    assert "NOPE" in str(unknown.value) and "/api/v3/klines" in str(unknown.value)
    with pytest.raises(BadRequest) as bad:
        classify(client, 400, b'{"code":-1120,"msg":"Invalid interval."}')
    assert bad.value.code == -1120
    with pytest.raises(Retryable) as limited:
        classify(client, 429, b'{"code":-1003,"msg":"Too much"}', {"Retry-After": "7"})
    assert isinstance(limited.value.error, RateLimited) and limited.value.retry_after == 7
    with pytest.raises(Retryable) as banned:
        classify(client, 418, b'{"code":-1003,"msg":"banned"}', {"Retry-After": "120"})
    assert banned.value.retry_after == 120
    with pytest.raises(Retryable) as server:
        classify(client, 503, b"<html>")
    assert isinstance(server.value.error, ExchangeUnavailable)
    with pytest.raises(Retryable):
        classify(client, 200, b'[[1499040000000,"0.0163')  # truncated body


def test_okx_error_mapping() -> None:
    client = OkxClient()
    with pytest.raises(UnknownSymbol) as unknown:
        classify(client, 200, b'{"code":"51001","data":[],"msg":"Instrument ID does not exist"}')
    assert unknown.value.code == "51001"
    with pytest.raises(Retryable) as limited:
        classify(client, 200, b'{"msg":"Too Many Requests","code":"50011"}')
    assert isinstance(limited.value.error, RateLimited)
    with pytest.raises(Retryable):
        classify(client, 429, b'{"msg":"Too Many Requests","code":"50011"}')
    with pytest.raises(BadRequest):
        classify(client, 400, b'{"code":"51000","msg":"Parameter bar error","data":[]}')
    with pytest.raises(Retryable):
        classify(client, 503, b'{"code":"50001","msg":"Service temporarily unavailable"}')
    assert classify(client, 200, b'{"code":"0","msg":"","data":[]}') == []


def test_coinbase_error_mapping() -> None:
    client = CoinbaseClient()
    with pytest.raises(UnknownSymbol):
        classify(client, 404, b'{"message":"NotFound"}')
    with pytest.raises(BadRequest) as bad:
        classify(client, 400, b'{"message":"Unsupported granularity"}')
    assert "Unsupported granularity" in str(bad.value)
    with pytest.raises(Retryable):
        classify(client, 429, b'{"message":"Public rate limit exceeded"}')


def test_errors_survive_pickling() -> None:
    import pickle

    error = UnknownSymbol("x", exchange="okx", endpoint="/e", symbol="S", status=200, code="51001")
    again = pickle.loads(pickle.dumps(error))
    assert isinstance(again, UnknownSymbol) and str(again) == str(error)
