"""The sandbox's wider universe: hundreds of instruments per exchange, as the exchanges list them.

Static (independent of the seed), built once at import in a few milliseconds. Documented facts
tests rely on:

* Counts: Binance about 330 spot pairs (USDT and some BTC quotes) and 150 USDT perpetuals; OKX
  about 260 spot pairs and 120 swaps; Coinbase about 230 products (USD and USDT). Listing dates
  spread from 2018 to mid-2025 (`GENERATED_FROM`, `GENERATED_UNTIL`).
* The rename (a token migration, as Binance ran it, see `models.aliases`): MATICUSDT spot on
  Binance is listed from 2019-04-26 and delisted 2024-09-10 03:00 UTC (status `BREAK` from
  then on, its klines still served up to then); POLUSDT opens 2024-09-13 10:00 UTC and trades
  on at MATIC's price (one asset, 1:1). The MATICUSDT perpetual settles 2024-09-09 00:00 UTC
  (status `SETTLING`).
* A second rename, to a one-letter base (FTM -> S, Fantom -> Sonic, as Binance and OKX ran it):
  FTMUSDT spot is listed on Binance and OKX from 2019-06-11 and delisted 2025-01-13 03:00 UTC
  (Binance `BREAK`; OKX drops it from `/public/instruments` and still serves its candles); SUSDT
  opens on Binance 2025-01-16 08:00 UTC and on OKX (S-USDT) 2025-01-15 00:00 UTC (the sandbox's
  choice: OKX's opening time is not confirmed) and trades on at FTM's price (one asset, 1:1).
* Delistings with history: on Binance `DELISTED_SPOT` (`BREAK`, klines served up to the
  delisting); on OKX `VANISHED_SPOT` drops out of `/public/instruments` at its delisting and its
  candles are still served up to then, while `PURGED_SPOT` also drops out and then answers 51001
  ("Instrument ID does not exist") for its candles; on Coinbase `DELISTED_PRODUCT` stays in
  `/products` with status `delisted`, `trading_disabled` true.
* Non-trading statuses: `HALTED_SPOT` on Binance (`HALT`), `DELIVERING_PERP` on Binance
  (contract type `PERPETUAL_DELIVERING`, status `TRADING`), `SUSPENDED_SPOT` on OKX (`suspend`),
  `OFFLINE_PRODUCT` on Coinbase (`offline`).
* Besides the named ones, about 1 in 12 generated listings is delisted at a date after its
  listing and before 2026 (same statuses as above per exchange).
"""

from __future__ import annotations

import hashlib
import math

from sandbox.listing import PERP, SPOT, Asset, Listing, utc_ms

GENERATED_FROM = utc_ms("2018-01-01")
GENERATED_UNTIL = utc_ms("2025-07-01")
_DELIST_UNTIL = utc_ms("2025-12-31")
DAY_MS = 86_400_000

# The named cases (documented above).
MATIC_LISTED = "2019-04-26"
MATIC_DELISTED = "2024-09-10T03:00:00"
POL_LISTED = "2024-09-13T10:00:00"
FTM_LISTED = "2019-06-11"
FTM_DELISTED = "2025-01-13T03:00:00"
S_LISTED = {"binance": "2025-01-16T08:00:00", "okx": "2025-01-15T00:00:00"}
MATIC_PERP_LISTED = "2020-10-22"
MATIC_PERP_SETTLED = "2024-09-09"
DELISTED_SPOT = "KAVORUSDT"  # Binance, BREAK
HALTED_SPOT = "LUMEXUSDT"  # Binance, HALT
DELIVERING_PERP = "ZENTAUSDT"  # Binance, PERPETUAL_DELIVERING
VANISHED_SPOT = "KAVORUSDT"  # OKX, dropped, candles served
PURGED_SPOT = "QUIROUSDT"  # OKX, dropped, candles answer 51001
SUSPENDED_SPOT = "LUMEXUSDT"  # OKX, suspend
DELISTED_PRODUCT = "KAVORUSD"  # Coinbase, delisted
OFFLINE_PRODUCT = "LUMEXUSD"  # Coinbase, offline
# Their listing and delisting dates (every named one lists early enough to have history).
NAMED_LISTED = "2020-03-02"
NAMED_DELISTED = "2025-03-14T08:00:00"

_CONSONANTS = "BDFGKLMNPRSTVZ"
_VOWELS = "AEIOU"
_FIXED_NAMES = ("KAVOR", "LUMEX", "ZENTA", "QUIRO")
_TAKEN = frozenset({"BTC", "ETH", "SOL", "BNB", "XRP", "DOGE", "ENA", "MATIC", "POL", "FTM", "S"})


def _unit(*parts: object) -> float:
    """A uniform [0, 1) number hashed from the parts (stable across processes)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def _names(count: int) -> list[str]:
    """`count` distinct pronounceable token codes (3 to 5 letters), the fixed ones first."""
    out = list(_FIXED_NAMES)
    seen = set(out) | _TAKEN
    i = 0
    while len(out) < count:
        length = 3 + int(_unit("len", i) * 3)
        letters = [
            (_CONSONANTS if j % 2 == 0 else _VOWELS)[
                int(_unit("c", i, j) * len(_CONSONANTS if j % 2 == 0 else _VOWELS))
            ]
            for j in range(length)
        ]
        name = "".join(letters)
        i += 1
        if name not in seen and not name.endswith(("USD", "BTC", "ETH", "EUR")):
            seen.add(name)
            out.append(name)
    return out


def _step(value: float) -> str:
    """A decimal step near `value` (a power of ten), as text."""
    exponent = math.floor(math.log10(value))
    return "1" if exponent >= 0 else f"{10.0**exponent:.{-exponent}f}"


def _asset(name: str, rank: int) -> Asset:
    price = 10 ** (-3 + 5.5 * _unit("price", name))  # 0.001 .. ~300 USD
    # Heavy-tailed daily turnover: rank 0 trades most (Zipf-like), with noise.
    turnover = 2e8 / (rank + 3) ** 1.1 * (0.5 + _unit("turnover", name))  # USD per day
    minute_volume = turnover / 1440 / price
    tick = _step(price / 10_000)
    lot = _step(max(1e-4, 10 / price / 1000))
    return Asset(
        name,
        price,
        0.0008 + 0.0012 * _unit("vol", name),
        minute_volume,
        minute_volume / 50,
        minute_volume * 600,
        tick,
        lot,
        _step(max(1e-3, 10 / price)),
        0.3 + 0.5 * _unit("swing", name),
    )


NAMES: tuple[str, ...] = tuple(_names(340))


def assets() -> dict[str, Asset]:
    """Price models of the generated bases, plus MATIC and POL, FTM and S (one asset each:
    the new code continues the old one's price, as the 1:1 migrations did)."""
    out = {name: _asset(name, rank) for rank, name in enumerate(NAMES)}
    matic = Asset("MATIC", 0.7, 0.0011, 400_000.0, 800.0, 2e8, "0.0001", "0.1", "10", 0.6)
    out["MATIC"] = matic
    out["POL"] = matic
    ftm = Asset("FTM", 0.6, 0.0013, 20_000.0, 100.0, 1e7, "0.0001", "0.1", "10", 0.6)
    out["FTM"] = ftm
    out["S"] = ftm
    return out


def _listed(exchange: str, kind: str, name: str) -> int:
    span = GENERATED_UNTIL - GENERATED_FROM
    when = GENERATED_FROM + int(_unit("listed", exchange, kind, name) * span)
    return when - when % 3_600_000


def _delisted(exchange: str, kind: str, name: str, listed: int) -> int | None:
    if _unit("delist", exchange, kind, name) >= 1 / 12:
        return None
    earliest = listed + 120 * DAY_MS
    if earliest >= _DELIST_UNTIL:
        return None
    when = earliest + int(_unit("delist-at", exchange, kind, name) * (_DELIST_UNTIL - earliest))
    return when - when % 3_600_000


def _make(exchange: str, kind: str, base: str, quote: str, listed: int, **extra: object) -> Listing:
    asset = assets_cache()[base]
    if exchange == "binance":
        native = f"{base}{quote}"
    elif exchange == "okx":
        native = f"{base}-{quote}-SWAP" if kind == PERP else f"{base}-{quote}"
    else:
        native = f"{base}-{quote}"
    lot = asset.contract_value if (exchange == "okx" and kind == PERP) else asset.lot
    funding = ((listed, 8),) if kind == PERP else ()
    return Listing(
        exchange, f"{base}{quote}", kind, native, base, quote, listed, asset.tick, lot, funding,
        **extra,  # type: ignore[arg-type]
    )  # fmt: skip


_ASSETS: dict[str, Asset] = {}


def assets_cache() -> dict[str, Asset]:
    if not _ASSETS:
        _ASSETS.update(assets())
    return _ASSETS


# How many of the generated names each market lists (the first n, by turnover rank).
_COUNTS: dict[tuple[str, str, str], int] = {
    ("binance", SPOT, "USDT"): 300,
    ("binance", SPOT, "BTC"): 30,
    ("binance", PERP, "USDT"): 148,
    ("okx", SPOT, "USDT"): 258,
    ("okx", PERP, "USDT"): 119,
    ("coinbase", SPOT, "USD"): 190,
    ("coinbase", SPOT, "USDT"): 40,
}


def _named(exchange: str, kind: str, symbol: str) -> dict[str, object]:
    """The documented status of a named listing, as Listing fields."""
    delisted: dict[str, object] = {"delisted_ms": utc_ms(NAMED_DELISTED)}
    if kind == SPOT and exchange == "binance":
        if symbol == DELISTED_SPOT:
            return delisted
        if symbol == HALTED_SPOT:
            return {"status": "HALT"}
    if kind == PERP and exchange == "binance" and symbol == DELIVERING_PERP:
        return {"delivering": True}
    if kind == SPOT and exchange == "okx":
        if symbol == VANISHED_SPOT:
            return delisted
        if symbol == PURGED_SPOT:
            return {**delisted, "purged": True}
        if symbol == SUSPENDED_SPOT:
            return {"status": "suspend"}
    if kind == SPOT and exchange == "coinbase":
        if symbol == DELISTED_PRODUCT:
            return delisted
        if symbol == OFFLINE_PRODUCT:
            return {"status": "offline"}
    return {}


_NAMED_SYMBOLS = frozenset(
    {DELISTED_SPOT, HALTED_SPOT, DELIVERING_PERP, VANISHED_SPOT, PURGED_SPOT, SUSPENDED_SPOT}
    | {DELISTED_PRODUCT, OFFLINE_PRODUCT}
)


def listings(demo: tuple[Listing, ...]) -> tuple[Listing, ...]:
    """The generated listings and the rename, never repeating a demo listing's market."""
    taken = {(item.exchange, item.kind, item.symbol) for item in demo}
    out: list[Listing] = []
    for (exchange, kind, quote), count in _COUNTS.items():
        for name in NAMES[:count]:
            symbol = f"{name}{quote}"
            if (exchange, kind, symbol) in taken:
                continue
            if symbol in _NAMED_SYMBOLS or name in _FIXED_NAMES:
                fields = _named(exchange, kind, symbol)
                listed = utc_ms(NAMED_LISTED)
            else:
                listed = _listed(exchange, kind, symbol)
                fields = {}
                if (delisted := _delisted(exchange, kind, symbol, listed)) is not None:
                    fields["delisted_ms"] = delisted
                    # On OKX one delisted spot pair in three is no longer served at all.
                    purge = _unit("purge", exchange, kind, symbol) < 1 / 3
                    if exchange == "okx" and kind == SPOT and purge:
                        fields["purged"] = True
            out.append(_make(exchange, kind, name, quote, listed, **fields))
    matic_end = utc_ms(MATIC_DELISTED)
    out.append(_make("binance", SPOT, "MATIC", "USDT", utc_ms(MATIC_LISTED), delisted_ms=matic_end))
    out.append(_make("binance", SPOT, "POL", "USDT", utc_ms(POL_LISTED)))
    out.append(
        _make(
            "binance",
            PERP,
            "MATIC",
            "USDT",
            utc_ms(MATIC_PERP_LISTED),
            delisted_ms=utc_ms(MATIC_PERP_SETTLED),
        )
    )
    for exchange in ("binance", "okx"):
        ftm_end = utc_ms(FTM_DELISTED)
        out.append(_make(exchange, SPOT, "FTM", "USDT", utc_ms(FTM_LISTED), delisted_ms=ftm_end))
        out.append(_make(exchange, SPOT, "S", "USDT", utc_ms(S_LISTED[exchange])))
    return tuple(out)
