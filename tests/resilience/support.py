"""Helpers for the resilience suite: the shared selection, CLI subprocesses, warehouse checks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.dataset as pads
from polars.testing import assert_frame_equal

from models.enums import Layer
from storage import PartitionKey, Warehouse

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "tests.resilience.cli_runner"]

# One selection for every comparison in the suite (small, but every exchange and silver dataset
# family that is fetched per day: candles, a resampled interval, funding).
START, END = date(2024, 2, 27), date(2024, 2, 29)
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
INTERVALS = ["1h", "4h"]
DATASETS = ["ohlcv", "funding"]
SELECTION: dict[str, Any] = {"symbols": SYMBOLS, "intervals": INTERVALS, "datasets": DATASETS}
COMPARED = ("ohlcv", "ohlcv_aggregated", "funding")
SORT_KEYS = {
    "ohlcv": ["exchange", "symbol", "interval", "ts"],
    "ohlcv_aggregated": ["symbol", "interval", "ts"],
    "funding": ["exchange", "symbol", "ts"],
}


def cli_args(start: date = START, end: date = END, *extra: str) -> list[str]:
    return [
        "backfill",
        "--start",
        start.isoformat(),
        "--end",
        end.isoformat(),
        "--symbols",
        ",".join(SYMBOLS),
        "--intervals",
        ",".join(INTERVALS),
        "--datasets",
        ",".join(DATASETS),
        *extra,
    ]


def cli_env(
    home: Path, warehouse: str, *, api_url: str | None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment of a CLI subprocess: its own PREFECT_HOME, the given warehouse and API."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CRYPTO_PIPELINE_", "PREFECT_", "HF_", "RESILIENCE_"))
    }
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "CRYPTO_PIPELINE_WAREHOUSE": warehouse,
            "CRYPTO_PIPELINE_PUBLISH_DIR": str(home / "dataset"),
            "CRYPTO_PIPELINE_TASK_RETRIES": "1",
            "CRYPTO_PIPELINE_TASK_RETRY_DELAY_S": "0.2",
            "COLUMNS": "200",
        }
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    env.update(extra or {})
    home.mkdir(parents=True, exist_ok=True)
    return env


def start_cli(args: Sequence[str], env: Mapping[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, *args],
        env=dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@dataclass
class Finished:
    code: int
    stdout: str
    stderr: str


def finish(proc: subprocess.Popen[str], timeout: float = 150) -> Finished:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"CLI did not finish in {timeout}s:\n{err[-3000:]}") from None
    return Finished(proc.returncode, out, err)


def kill_when(
    proc: subprocess.Popen[str], condition: Callable[[], bool], timeout: float = 120
) -> bool:
    """SIGKILL `proc` as soon as `condition()` holds (polled); False if it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    proc.kill()
    proc.communicate()
    raise AssertionError("kill condition never held")


def data_files(root: Path, layer: str, *, datasets: Sequence[str] | None = None) -> list[Path]:
    base = root / layer
    if not base.exists():
        return []
    return [
        p
        for p in base.rglob("*.parquet")
        if datasets is None or p.relative_to(base).parts[0] in datasets
    ]


def staged_temps(root: Path) -> list[Path]:
    staging = root / ".staging"
    return list(staging.glob("*.tmp")) if staging.exists() else []


def silver_tables(uri: str) -> dict[str, pl.DataFrame]:
    """Every compared silver dataset, sorted on its unique key."""
    wh = Warehouse(uri)
    out = {}
    for dataset in COMPARED:
        frame = wh.scan(Layer.SILVER, dataset).collect()
        out[dataset] = frame.select(sorted(frame.columns)).sort(SORT_KEYS[dataset])
    return out


def assert_same_silver(actual: dict[str, pl.DataFrame], expected: dict[str, pl.DataFrame]) -> None:
    for dataset, frame in expected.items():
        assert not frame.is_empty(), dataset
        got = actual[dataset]
        keys = SORT_KEYS[dataset]
        assert got.select(pl.struct(keys).is_unique().all()).item(), f"duplicates in {dataset}"
        assert_frame_equal(got, frame, check_exact=True)


def assert_readers_see_only_whole_files(root: Path) -> None:
    """polars, DuckDB and pyarrow read every dataset of every layer completely."""
    for layer in ("bronze", "silver", "quarantine"):
        base = root / layer
        if not base.exists():
            continue
        for dataset_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            files = list(dataset_dir.rglob("*.parquet"))
            if not files:
                continue
            assert all(not f.name.endswith(".tmp") for f in dataset_dir.rglob("*"))
            if layer == "bronze":  # raw fields differ per exchange: read each exchange alone
                groups = [
                    str(d)
                    for d in dataset_dir.iterdir()
                    if d.is_dir() and any(d.rglob("*.parquet"))
                ]
            else:
                groups = [str(dataset_dir)]
            for group in groups:
                pl.scan_parquet(f"{group}/**/*.parquet", hive_partitioning=True).collect()
                pads.dataset(group, format="parquet", partitioning="hive").to_table()
                duckdb.sql(
                    f"SELECT count(*) FROM read_parquet('{group}/**/*.parquet', "
                    "hive_partitioning = true)"
                ).fetchall()


def assert_coverage_truthful(uri: str) -> None:
    """Every (layer, dataset, exchange, symbol, day) recorded complete is really there:
    its partition file reads back whole and holds the recorded rows of that symbol."""
    wh = Warehouse(uri)
    records = wh.coverage.records().filter(pl.col("complete"))
    for rec in records.iter_rows(named=True):
        if rec["layer"] not in ("bronze", "silver") or rec["rows_present"] == 0:
            continue
        key = PartitionKey(
            layer=Layer(rec["layer"]),
            dataset=rec["dataset"],
            exchange=rec["exchange"],
            interval=rec["interval"],
            day=rec["day"],
        )
        assert wh.validate(key) is None, (rec, wh.validate(key))
        frame = wh.read(key)
        assert frame is not None
        held = frame.filter(pl.col("symbol") == rec["symbol"]).height
        assert held == rec["rows_present"], (rec, held)
