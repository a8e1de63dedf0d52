"""Coverage reporting for the CLI: expected vs present rows, gaps and quarantined rows."""

from __future__ import annotations

import polars as pl
from rich.console import Console
from rich.table import Table

from models.enums import Dataset, Exchange, parse_enum_list
from models.settings import Settings
from models.symbols import validate_symbol
from storage import Warehouse


def coverage_frame(
    warehouse: Warehouse,
    *,
    layer: str = "silver",
    dataset: str | None = None,
    exchange: str | None = None,
    symbol: str | None = None,
) -> pl.DataFrame:
    """Per dataset/exchange/interval/symbol totals over every recorded day."""
    records = warehouse.coverage.query(
        layer=layer, dataset=dataset, exchange=exchange, symbol=symbol
    )
    if records.is_empty():
        return records
    return (
        records.group_by("dataset", "exchange", "interval", "symbol")
        .agg(
            pl.col("day").min().alias("first_day"),
            pl.col("day").max().alias("last_day"),
            pl.len().alias("days"),
            pl.col("complete").sum().alias("complete_days"),
            pl.col("rows_present").sum().alias("present"),
            pl.col("rows_expected").sum().alias("expected"),
            pl.col("gaps").list.len().sum().alias("gaps"),
            pl.col("quarantined").sum().alias("quarantined"),
        )
        .sort("dataset", "exchange", "interval", "symbol", nulls_last=True)
    )


def print_coverage(
    settings: Settings,
    *,
    dataset: str | None,
    exchange: str | None,
    symbol: str | None,
    layer: str,
    console: Console,
) -> int:
    """Print the coverage table; exit code 0 (1 when nothing is recorded yet)."""
    ds = parse_enum_list(Dataset, dataset)[0].value if dataset else None
    ex = parse_enum_list(Exchange, exchange)[0].value if exchange else None
    sym = validate_symbol(symbol) if symbol else None
    frame = coverage_frame(
        Warehouse.from_settings(settings), layer=layer, dataset=ds, exchange=ex, symbol=sym
    )
    if frame.is_empty():
        console.print(f"no {layer} coverage recorded in {settings.warehouse}")
        return 1
    fixed = {"dataset": ds, "exchange": ex, "symbol": sym}
    frame = frame.drop([c for c, v in fixed.items() if v is not None])
    title = ", ".join(f"{c} {v}" for c, v in fixed.items() if v is not None)
    table = Table(
        title=f"{layer} coverage in {settings.warehouse}" + (f": {title}" if title else "")
    )
    for column in frame.columns:
        table.add_column(column, justify="right" if frame[column].dtype.is_numeric() else "left")
    for row in frame.iter_rows():
        table.add_row(
            *["" if v is None else f"{v:,}" if isinstance(v, int) else str(v) for v in row]
        )
    console.print(table)
    return 0
