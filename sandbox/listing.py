"""The sandbox's market vocabulary: assets, listings and the time and step helpers they use
(shared by the demo catalog and the wider universe)."""

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
