"""Synthetic silver data and a fake Hub for the gold-layer tests."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import polars as pl
import pytest

from models.silver import SILVER_SCHEMAS
from tasks.publish import Manifest, build_layout, render_card
from tests.fake_hub import FakeHub

EXCHANGES = ("binance", "coinbase", "okx")
PERP_EXCHANGES = ("binance", "okx")
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
INTERVALS = {"1m": 1, "1h": 60, "1d": 1440}
BASE_PRICE = {"BTCUSDT": 42_000.0, "ETHUSDT": 2_300.0, "SOLUSDT": 100.0}
EXCHANGE_BASIS = {"binance": 0.0, "coinbase": 0.0004, "okx": -0.0003}
FIRST_DAY = date(2023, 12, 30)
TOKEN = "hf_FakeHubSecretToken0123456789abcdef"


def _grid(first_day: date, days: int, minutes: int) -> pl.Series:
    start = datetime.combine(first_day, datetime.min.time(), UTC)
    end = start + timedelta(days=days) - timedelta(minutes=minutes)
    return pl.datetime_range(start, end, f"{minutes}m", time_unit="ms", time_zone="UTC", eager=True)


def _series(keys: dict[str, tuple[str, ...]], ts: pl.Series) -> pl.DataFrame:
    frame = pl.DataFrame({"ts": ts})
    for name, values in keys.items():
        frame = frame.join(pl.DataFrame({name: list(values)}), how="cross")
    return frame


def _price(ts: pl.Expr) -> pl.Expr:
    """A deterministic price path: a function of (symbol, exchange, ts) only."""
    minutes = ts.dt.epoch("s") // 60
    wave = (minutes.cast(pl.Float64) / 97.0).sin() * 0.01
    base = pl.col("symbol").replace_strict(BASE_PRICE, return_dtype=pl.Float64)
    basis = pl.col("exchange").replace_strict(EXCHANGE_BASIS, return_dtype=pl.Float64)
    return base * (1.0 + wave + basis)


def ohlcv(first_day: date, days: int) -> pl.DataFrame:
    parts = []
    for interval, minutes in INTERVALS.items():
        grid = _series({"exchange": EXCHANGES, "symbol": SYMBOLS}, _grid(first_day, days, minutes))
        parts.append(
            grid.with_columns(
                pl.lit(interval).alias("interval"),
                _price(pl.col("ts")).alias("open"),
                _price(pl.col("ts") + pl.duration(minutes=minutes)).alias("close"),
            ).with_columns(
                (pl.max_horizontal("open", "close") * 1.001).alias("high"),
                (pl.min_horizontal("open", "close") * 0.999).alias("low"),
                (pl.col("ts").dt.minute().cast(pl.Float64) + 1.0).alias("volume"),
            )
        )
    frame = pl.concat(parts).with_columns(
        (pl.col("volume") * pl.col("close")).alias("quote_volume"),
        pl.when(pl.col("exchange") == "coinbase")
        .then(None)
        .otherwise(pl.col("ts").dt.hour().cast(pl.Int64) * 10)
        .alias("trades"),
    )
    return frame.select(SILVER_SCHEMAS["ohlcv"].names())


def ohlcv_aggregated(candles: pl.DataFrame) -> pl.DataFrame:
    return (
        candles.group_by("symbol", "interval", "ts")
        .agg(
            pl.col("open").mean(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").mean(),
            pl.col("volume").sum(),
            pl.col("quote_volume").sum(),
            (pl.col("quote_volume").sum() / pl.col("volume").sum()).alias("vwap"),
            pl.len().cast(pl.Int64).alias("n_exchanges"),
            pl.col("exchange").sort().alias("exchanges"),
        )
        .select(SILVER_SCHEMAS["ohlcv_aggregated"].names())
    )


def funding(first_day: date, days: int) -> pl.DataFrame:
    grid = _series({"exchange": PERP_EXCHANGES, "symbol": SYMBOLS}, _grid(first_day, days, 480))
    rate = (pl.col("ts").dt.epoch("s") // 28_800 % 7 - 3).cast(pl.Float64) * 1e-5
    return grid.select(
        "exchange",
        "symbol",
        "ts",
        rate.alias("funding_rate"),
        _price(pl.col("ts")).alias("mark_price"),
        pl.lit(8.0).alias("interval_hours"),
        (rate * 3 * 365).alias("apr"),
    )


def open_interest(first_day: date, days: int) -> pl.DataFrame:
    grid = _series({"exchange": PERP_EXCHANGES, "symbol": SYMBOLS}, _grid(first_day, days, 60))
    amount = (pl.col("ts").dt.hour().cast(pl.Float64) + 1.0) * 1_000.0
    return grid.select(
        "exchange",
        "symbol",
        "ts",
        amount.alias("open_interest"),
        (amount * _price(pl.col("ts"))).alias("open_interest_value"),
    )


def instruments() -> pl.DataFrame:
    rows = [
        (ex, sym, native, sym[:-4], "USDT", kind, "trading")
        for ex in EXCHANGES
        for sym in SYMBOLS
        for kind, native in (
            (
                "spot",
                {"binance": sym, "coinbase": f"{sym[:-4]}-USDT", "okx": f"{sym[:-4]}-USDT"}[ex],
            ),
            ("perp", f"{sym[:-4]}-USDT-SWAP" if ex == "okx" else sym),
        )
        if kind == "spot" or ex in PERP_EXCHANGES
    ]
    return pl.DataFrame(rows, schema=SILVER_SCHEMAS["instruments"], orient="row")


def silver_frames(days: int, first_day: date = FIRST_DAY) -> dict[str, pl.LazyFrame]:
    candles = ohlcv(first_day, days)
    return {
        "ohlcv": candles.lazy(),
        "ohlcv_aggregated": ohlcv_aggregated(candles).lazy(),
        "funding": funding(first_day, days).lazy(),
        "open_interest": open_interest(first_day, days).lazy(),
        "instruments": instruments().lazy(),
    }


def stage(
    silver: dict[str, pl.LazyFrame], staging_dir: Path, repo_id: str | None = "tester/crypto"
) -> Manifest:
    """Layout plus card, as the gold flow builds them."""
    manifest = build_layout(silver, staging_dir)
    return manifest.with_card(staging_dir, render_card(manifest, repo_id=repo_id))


LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@pytest.fixture(autouse=True)
def no_internet(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse (and fail the test on) any name lookup other than the loopback address."""
    attempts: list[str] = []
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in LOCAL_HOSTS:
            attempts.append(name)
            raise socket.gaierror(f"tests must not reach {name}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield attempts
    assert not attempts, f"a test tried to reach {sorted(set(attempts))}"


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A fake Hub requiring TOKEN for writes; the client's default endpoint points at it too."""
    with FakeHub(token=TOKEN) as hub:
        point_client_at(hub, monkeypatch)
        yield hub


def point_client_at(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-point huggingface_hub's import-time endpoint constants (both must move together:
    `hf_hub_url` builds from the template, then swaps a prefix equal to `ENDPOINT`)."""
    constants = huggingface_hub.constants
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    template = f"{hub.url}/{{repo_id}}/resolve/{{revision}}/{{filename}}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)


@pytest.fixture
def make_silver() -> Callable[..., dict[str, pl.LazyFrame]]:
    return silver_frames


@pytest.fixture
def stage_dataset() -> Callable[..., Manifest]:
    return stage


@pytest.fixture
def hub_token() -> str:
    return TOKEN
