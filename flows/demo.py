"""`crypto-pipeline demo`: the main job end to end on the embedded defaults."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table

from models.dates import utc_today
from models.enums import Layer
from models.settings import Settings

DEMO_DAYS = 7


def run_demo(settings: Settings, *, console: Console) -> int:
    """Start a sandbox, backfill the last closed week of every dataset, build silver, export
    the dataset folder, then print a summary and a query to try."""
    from flows.backfill import backfill_flow
    from flows.entry import using_settings
    from flows.gold import gold_flow
    from flows.runner import run_with_progress
    from models.selection import Selection
    from sandbox import SandboxConfig, SandboxServer
    from storage import SILVER_DATASETS, Warehouse

    started = time.monotonic()
    end = utc_today() - timedelta(days=1)
    start = end - timedelta(days=DEMO_DAYS - 1)
    with (
        SandboxServer(SandboxConfig()) as sandbox,
        using_settings(settings := settings.model_copy(update={"sandbox_url": sandbox.url})),
    ):
        console.print(
            f"sandbox exchange at {sandbox.url}; warehouse {settings.warehouse}; "
            f"dataset folder {settings.publish_dir}"
        )
        state = run_with_progress(
            lambda: backfill_flow(selection=Selection(start=start, end=end), return_state=True),
            title=f"backfill {start}..{end}",
        )
        if not state.is_completed():
            console.print(f"[red]backfill failed:[/red] {state.message}")
            return 1
        published = run_with_progress(
            lambda: gold_flow(local_dir=settings.publish_dir, return_state=True), title="publish"
        )
        if not published.is_completed():
            console.print(f"[red]publish failed:[/red] {published.message}")
            return 1
    warehouse = Warehouse.from_settings(settings)
    table = Table(title=f"silver datasets, {start} .. {end}")
    for column in ("dataset", "rows", "exchanges", "symbols"):
        table.add_column(column)
    for name in SILVER_DATASETS:
        frame = warehouse.scan(Layer.SILVER, name)
        cols = frame.collect_schema().names()
        stats = frame.select(
            pl.len().alias("rows"),
            (pl.col("exchange").n_unique() if "exchange" in cols else pl.lit(None)).alias("ex"),
            pl.col("symbol").n_unique().alias("sym"),
        ).collect()
        rows, ex, sym = stats.row(0)
        table.add_row(name, f"{rows:,}", "" if ex is None else str(ex), str(sym))
    console.print(table)
    silver = warehouse.dataset_path(Layer.SILVER, "ohlcv")
    dataset_dir = Path(settings.publish_dir).resolve()
    console.print(f"warehouse: {Path(settings.warehouse).resolve()}")
    console.print(f"dataset folder: {dataset_dir} (see its README.md)")
    query = (
        "SELECT exchange, symbol, count(*) AS candles, avg(close) AS avg_close "
        f"FROM read_parquet('{silver}/**/*.parquet', hive_partitioning=true) "
        "WHERE interval = '1h' GROUP BY ALL ORDER BY ALL"
    )
    console.print("query to try (duckdb):")
    console.print(f'  python -c "import duckdb; print(duckdb.sql(\\"{query}\\"))"', markup=False)
    console.print("coverage: crypto-pipeline coverage --dataset ohlcv --symbol BTCUSDT")
    console.print(f"done in {time.monotonic() - started:,.0f} s")
    return 0
