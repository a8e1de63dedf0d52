"""A one-letter base through the clients: Sonic (S), FTM's successor, in the sandbox's universe.

Injected: the sandbox's FTM -> S rename (`sandbox.universe`: FTMUSDT delisted on Binance and
OKX 2025-01-13 03:00 UTC; SUSDT opened on Binance 2025-01-16 08:00, on OKX 2025-01-15 00:00).
Held: `s-usdt` validates to SUSDT, resolves to each exchange's id (SUSDT, S-USDT) and its
candles come back; FTM's history up to the delisting too; followed across the rename, silver
rows of both read as one SUSDT series per exchange, the gap where no listing traded excepted.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from clients.base import RetryPolicy
from clients.factory import make_client
from models.enums import Exchange, Interval, MarketKind
from models.symbols import split_symbol, validate_symbol
from sandbox import universe
from sandbox.server import SandboxServer
from tasks.transform import normalize_ohlcv
from tasks.transform.renames import LISTED_AS, follow_series, rename_gaps

RETRY = RetryPolicy(attempts=3, base_delay=0.02, max_delay=0.2, timeout=15.0)
FTM_END = datetime.fromisoformat(universe.FTM_DELISTED).replace(tzinfo=UTC)
START, END = datetime(2025, 1, 12, tzinfo=UTC), datetime(2025, 1, 18, tzinfo=UTC)


async def test_sonic_resolves_fetches_and_follows_fantom(sandbox: SandboxServer) -> None:
    symbol = validate_symbol("s-usdt")
    assert symbol == "SUSDT" and split_symbol(symbol) == ("S", "USDT")
    frames = []
    for exchange, native in ((Exchange.BINANCE, "SUSDT"), (Exchange.OKX, "S-USDT")):
        async with make_client(
            exchange, sandbox_url=sandbox.url, rate_limits=False, retry=RETRY
        ) as c:
            inst = await c.resolve(symbol, MarketKind.SPOT)
            assert (inst.native_symbol, inst.base, inst.quote) == (native, "S", "USDT")
            # OKX dropped FTM-USDT from its listing: a backfill asks for it as unlisted.
            await c.resolve("FTMUSDT", MarketKind.SPOT, unlisted=True)
            for name in ("FTMUSDT", symbol):
                bronze = await c.ohlcv(name, Interval.H1, START, END)
                frames.append(normalize_ohlcv(bronze, exchange=exchange.value))
    silver = pl.concat(frames, how="diagonal_relaxed").drop("fetched_at", strict=False)
    followed = follow_series(silver, "FTMUSDT")
    assert followed.height == silver.height
    for exchange in ("binance", "okx"):
        rows = followed.filter(pl.col("exchange") == exchange)
        opened = datetime.fromisoformat(universe.S_LISTED[exchange]).replace(tzinfo=UTC)
        assert set(rows.get_column("symbol")) == {"SUSDT"}
        old = rows.filter(pl.col(LISTED_AS) == "FTMUSDT").get_column("ts")
        new = rows.filter(pl.col(LISTED_AS) == "SUSDT").get_column("ts")
        # Every hour of each listing in the range: FTM's up to the delisting, S's from its
        # opening (the sandbox has no maintenance gap in this week).
        assert old.min() == START and old.max() == datetime(2025, 1, 13, 2, tzinfo=UTC)
        assert new.min() == opened and len(new) == (END - opened).total_seconds() // 3600
        assert len(old) == (FTM_END - START).total_seconds() // 3600
    # The alias table: Binance's opening is verified; OKX's is not (the gap has no end).
    assert rename_gaps("SUSDT", "binance") == [
        (FTM_END, datetime.fromisoformat(universe.S_LISTED["binance"]).replace(tzinfo=UTC))
    ]
    assert rename_gaps("SUSDT", "okx") == [(FTM_END, None)]
