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

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

DAY_MS = 86_400_000
HOUR_MS = 3_600_000

EXCHANGES = ("binance", "coinbase", "okx")
SPOT = "spot"
PERP = "perp"


def utc_ms(text: str) -> int:
    """Epoch milliseconds of an ISO date or datetime taken as UTC."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class Asset:
    """Price-model parameters of one base asset."""

    base: str
    price: float  # geometric centre of the long-run price range, in USD
    minute_vol: float  # typical log-return standard deviation of one minute
    minute_volume: float  # typical base volume traded per minute on a large venue
    trade_size: float  # typical base size of one trade
    open_interest: float  # typical perpetual open interest in base units
    tick: str  # spot price tick
    lot: str  # spot quantity step
    contract_value: str  # OKX swap contract size in base units
    swing: float  # amplitude of the multi-year log-price cycle


ASSETS: dict[str, Asset] = {
    a.base: a
    for a in (
        Asset("BTC", 55_000.0, 0.0006, 25.0, 0.02, 80_000.0, "0.01", "0.00001", "0.01", 0.5),
        Asset("ETH", 2_800.0, 0.0007, 300.0, 0.3, 1_500_000.0, "0.01", "0.0001", "0.1", 0.3),
        Asset("SOL", 65.0, 0.0010, 4_000.0, 5.0, 9_000_000.0, "0.01", "0.001", "1", 0.8),
        Asset("BNB", 420.0, 0.0007, 600.0, 0.8, 700_000.0, "0.01", "0.001", "0.01", 0.35),
        Asset("XRP", 0.60, 0.0009, 300_000.0, 600.0, 400_000_000.0, "0.0001", "0.1", "100", 0.4),
        Asset("DOGE", 0.12, 0.0011, 1_500_000.0, 3_000.0, 3e9, "0.00001", "1", "1000", 0.5),
        Asset("ENA", 0.55, 0.0014, 250_000.0, 500.0, 300_000_000.0, "0.0001", "0.01", "10", 0.5),
    )
}


@dataclass(frozen=True)
class Listing:
    """One market of one exchange (a spot pair or a linear perpetual)."""

    exchange: str
    symbol: str  # unified BASE+QUOTE, e.g. BTCUSDT
    kind: str  # spot | perp
    native: str  # BTCUSDT / BTC-USDT / BTC-USDT-SWAP / BTC-USD
    base: str
    quote: str
    listed_ms: int
    tick: str
    lot: str
    funding: tuple[tuple[int, int], ...] = ()  # (from_ms, interval_hours) segments, perps only
    # The listing's end: no data from then on, and the exchange shows it delisted (Binance
    # `BREAK`, or `SETTLING` for a perpetual; OKX drops it; Coinbase `delisted`).
    delisted_ms: int | None = None
    # A status other than trading while listed (Binance `HALT`, OKX `suspend`, Coinbase
    # `offline`); empty: the exchange's trading word.
    status: str = ""
    # After its delisting the exchange no longer serves its data at all (OKX answers 51001).
    purged: bool = False
    # A Binance perpetual being delisted: contract type `PERPETUAL_DELIVERING`.
    delivering: bool = False

    @property
    def asset(self) -> Asset:
        return ASSETS[self.base]

    def delisted_at(self, now_ms: int) -> bool:
        """Whether the listing has ended by `now_ms`."""
        return self.delisted_ms is not None and self.delisted_ms <= now_ms

    def serves(self, now_ms: int) -> bool:
        """Whether the exchange still serves the listing's data at `now_ms`."""
        return not (self.purged and self.delisted_at(now_ms))

    @property
    def tick_decimals(self) -> int:
        return decimals(self.tick)

    @property
    def lot_decimals(self) -> int:
        return decimals(self.lot)

    @property
    def lot_parts(self) -> tuple[int, int]:
        """The lot as (mantissa, decimals): "0.001" -> (1, 3), "100" -> (100, 0)."""
        return step_parts(self.lot)

    @property
    def contract_value(self) -> str:
        return self.asset.contract_value

    def funding_hours_at(self, ms: int) -> int:
        hours = self.funding[0][1] if self.funding else 8
        for start, interval in self.funding:
            if ms >= start:
                hours = interval
        return hours


def step_parts(step: str) -> tuple[int, int]:
    """A decimal step as an integer mantissa and a number of decimals."""
    places = decimals(step)
    return int(Decimal(step) * 10**places), places


def decimals(step: str) -> int:
    """Number of decimals of a decimal step string ("0.001" -> 3, "1" -> 0)."""
    exponent = Decimal(step).normalize().as_tuple().exponent
    return max(0, -int(exponent))


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
