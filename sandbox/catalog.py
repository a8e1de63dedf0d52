"""What the sandbox exchanges list: assets, listings with their dates, precisions and schedules.

Documented facts tests rely on:

* ENAUSDT is listed during 2024: spot and perpetual from 2024-04-02 08:00 UTC on Binance and OKX.
* BNBUSDT (and ENA) are not listed on Coinbase; Coinbase lists X-USD and X-USDT products.
* SOLUSDT perpetual funding is every 8 h before 2024-06-01 00:00 UTC and every 4 h from then on
  (Binance and OKX); ENAUSDT perpetual funding is every 4 h; every other perpetual every 8 h.

Besides these, a wider universe (`sandbox.universe`) is listed, so that listing code meets what
the exchanges really list: hundreds of instruments per exchange with varied listing dates,
delistings with their history, one rename and statuses other than trading. The demo listings
above are unchanged by it (same fields, same candles).
"""

from __future__ import annotations

from sandbox.listing import (
    ASSETS,
    PERP,
    SPOT,
    Listing,
    utc_ms,
)

SOL_FUNDING_SWITCH_MS = utc_ms("2024-06-01")
ENA_LISTING_MS = utc_ms("2024-04-02T08:00:00")

# Listing dates per (exchange, kind): base -> ISO moment.
_SPOT_DATES: dict[str, dict[str, str]] = {
    "binance": {
        "BTC": "2017-08-17",
        "ETH": "2017-08-17",
        "BNB": "2017-11-06",
        "XRP": "2018-05-04",
        "DOGE": "2019-07-05",
        "SOL": "2020-08-11",
        "ENA": "2024-04-02T08:00:00",
    },
    "okx": {
        "BTC": "2018-01-11",
        "ETH": "2018-01-11",
        "XRP": "2018-01-11",
        "BNB": "2019-03-01",
        "DOGE": "2019-06-01",
        "SOL": "2020-08-11",
        "ENA": "2024-04-02T08:00:00",
    },
}
_COINBASE_DATES: dict[str, dict[str, str]] = {
    "USD": {
        "BTC": "2015-07-20",
        "ETH": "2016-05-18",
        "XRP": "2019-02-25",
        "DOGE": "2021-06-03",
        "SOL": "2021-06-17",
    },
    "USDT": {
        "BTC": "2021-05-04",
        "ETH": "2021-05-04",
        "DOGE": "2021-06-03",
        "SOL": "2021-06-17",
        "XRP": "2023-07-13",
    },
}
_PERP_DATES: dict[str, dict[str, str]] = {
    "binance": {
        "BTC": "2019-09-08",
        "ETH": "2019-11-27",
        "XRP": "2020-01-06",
        "BNB": "2020-02-10",
        "DOGE": "2020-07-10",
        "SOL": "2020-09-14",
        "ENA": "2024-04-02T08:00:00",
    },
    "okx": {
        "BTC": "2019-12-10",
        "ETH": "2019-12-10",
        "XRP": "2020-03-01",
        "BNB": "2020-06-01",
        "SOL": "2020-09-14",
        "DOGE": "2021-01-13",
        "ENA": "2024-04-02T08:00:00",
    },
}


def _funding_schedule(base: str, listed_ms: int) -> tuple[tuple[int, int], ...]:
    if base == "ENA":
        return ((listed_ms, 4),)
    if base == "SOL":
        return ((listed_ms, 8), (SOL_FUNDING_SWITCH_MS, 4))
    return ((listed_ms, 8),)


def _build() -> tuple[Listing, ...]:
    out: list[Listing] = []
    for exchange, dates in _SPOT_DATES.items():
        for base, when in dates.items():
            asset = ASSETS[base]
            native = f"{base}USDT" if exchange == "binance" else f"{base}-USDT"
            out.append(
                Listing(
                    exchange, f"{base}USDT", SPOT, native, base, "USDT", utc_ms(when),
                    asset.tick, asset.lot,
                )
            )  # fmt: skip
    for quote, dates in _COINBASE_DATES.items():
        for base, when in dates.items():
            asset = ASSETS[base]
            out.append(
                Listing(
                    "coinbase", f"{base}{quote}", SPOT, f"{base}-{quote}", base, quote,
                    utc_ms(when), asset.tick, asset.lot,
                )
            )  # fmt: skip
    for exchange, dates in _PERP_DATES.items():
        for base, when in dates.items():
            asset = ASSETS[base]
            listed = utc_ms(when)
            native = f"{base}USDT" if exchange == "binance" else f"{base}-USDT-SWAP"
            lot = asset.lot if exchange == "binance" else asset.contract_value
            out.append(
                Listing(
                    exchange, f"{base}USDT", PERP, native, base, "USDT", listed, asset.tick,
                    lot, _funding_schedule(base, listed),
                )
            )  # fmt: skip
    return tuple(out)


def _all() -> tuple[Listing, ...]:
    from sandbox import universe

    demo = _build()
    ASSETS.update(universe.assets())
    return demo + universe.listings(demo)


LISTINGS: tuple[Listing, ...] = _all()
_BY_NATIVE: dict[tuple[str, str, str], Listing] = {
    (item.exchange, item.kind, item.native): item for item in LISTINGS
}
_BY_SYMBOL: dict[tuple[str, str, str], Listing] = {
    (item.exchange, item.kind, item.symbol): item for item in LISTINGS
}


def by_native(exchange: str, kind: str, native: str) -> Listing | None:
    """The listing an exchange-native id names, or None."""
    return _BY_NATIVE.get((exchange, kind, native))


def by_symbol(exchange: str, kind: str, symbol: str) -> Listing | None:
    """The listing of a unified symbol on an exchange, or None."""
    return _BY_SYMBOL.get((exchange, kind, symbol))


_BY_MARKET: dict[tuple[str, str], list[Listing]] = {}
for _item in LISTINGS:
    _BY_MARKET.setdefault((_item.exchange, _item.kind), []).append(_item)


def listings(exchange: str, kind: str) -> list[Listing]:
    """Every listing of one market, delisted ones included, demo listings first."""
    return list(_BY_MARKET.get((exchange, kind), ()))


def demo(exchange: str, kind: str) -> list[Listing]:
    """The demo listings only (BTC, ETH, SOL, BNB, XRP, DOGE, ENA)."""
    return [item for item in listings(exchange, kind) if item.base in DEMO_BASES]


DEMO_BASES = frozenset({"BTC", "ETH", "SOL", "BNB", "XRP", "DOGE", "ENA"})
