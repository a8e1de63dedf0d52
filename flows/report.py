"""Reporting for the CLI without Prefect: coverage (expected vs present rows, gaps,
quarantined rows), the plan of a backfill before it runs, and the summary after it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import polars as pl
from rich.console import Console
from rich.table import Table

from models.enums import Dataset, Exchange, Layer, parse_enum_list
from models.selection import RunRequest
from models.settings import Settings
from models.symbols import validate_symbol
from storage import Warehouse
from storage.planning import Plan, describe, describe_states, plan, source_states

if TYPE_CHECKING:
    from tasks.reports import BackfillReport


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
    warehouse = Warehouse.from_settings(settings)
    frame = coverage_frame(warehouse, layer=layer, dataset=ds, exchange=ex, symbol=sym)
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
    states = source_states(warehouse, layer=layer, dataset=ds, exchange=ex, symbol=sym)
    if not states.is_empty():
        console.print("days complete, missing and unavailable at the source:")
        for line in describe_states(states):
            console.print(f"  {line}", markup=False)
    return 0


# -- before a run: the plan (dry run, nothing to do) ------------------------------------------


@dataclass
class RunPlan:
    """What a backfill of `request` would do, from the coverage index (no exchange, no Prefect):
    bronze partitions to fetch and silver partitions to build."""

    request: RunRequest
    bronze: Plan
    silver: Plan

    @property
    def empty(self) -> bool:
        return not self.bronze and not self.silver


def plan_run(warehouse: Warehouse, request: RunRequest) -> RunPlan:
    """Plan both layers of `request` as the stages will (`storage.planning.plan`)."""
    return RunPlan(
        request, plan(warehouse, Layer.BRONZE, request), plan(warehouse, Layer.SILVER, request)
    )


def print_plan(run_plan: RunPlan, console: Console) -> None:
    """Per layer and series, the day ranges a backfill would fetch or build."""
    days = run_plan.request.days
    console.print(f"plan for {days.start}..{days.end} ({len(days)} days):")
    for layer, verb, specs in (
        ("bronze", "fetch", run_plan.bronze),
        ("silver", "build", run_plan.silver),
    ):
        if not specs:
            console.print(f"  {layer}: nothing to {verb}")
            continue
        console.print(f"  {layer}: {verb} {len(specs)} partition(s)")
        for line in describe(specs):
            console.print(f"    {line}", highlight=False)
        for spec, why in getattr(specs, "damaged", {}).items():
            console.print(f"    damaged, redone: {spec.label}: {why}", highlight=False)


def range_summary(warehouse: Warehouse, request: RunRequest, layer: str = "silver") -> Table:
    """Coverage of the request's days per dataset, exchange and interval (complete days,
    rows present of expected, gaps, quarantined rows)."""
    records = warehouse.coverage.query(layer=layer, start=request.days.start, end=request.days.end)
    wanted = [e.value for e in request.exchanges]
    table = Table(title=f"{layer} coverage {request.days.start}..{request.days.end}")
    columns = ("dataset", "exchange", "interval", "complete days", "rows", "gaps", "quarantined")
    for column in columns:
        table.add_column(column, justify="left" if column in _TEXT else "right")
    if records.is_empty():
        return table
    frame = (
        records.filter(pl.col("exchange").is_in(wanted))
        .group_by("dataset", "exchange", "interval", "day")
        .agg(
            pl.col("complete").all().alias("complete"),
            pl.col("rows_present").sum().alias("present"),
            pl.col("rows_expected").sum().alias("expected"),
            pl.col("gaps").list.len().sum().alias("gaps"),
            pl.col("quarantined").sum().alias("quarantined"),
        )
        .group_by("dataset", "exchange", "interval")
        .agg(
            pl.col("complete").sum().alias("complete_days"),
            pl.len().alias("days"),
            pl.col("present").sum(),
            pl.col("expected").sum(),
            pl.col("gaps").sum(),
            pl.col("quarantined").sum(),
        )
        .sort("dataset", "exchange", "interval", nulls_last=True)
    )
    total = len(request.days)
    for row in frame.iter_rows(named=True):
        table.add_row(
            row["dataset"],
            row["exchange"],
            row["interval"] or "",
            f"{row['complete_days']}/{total}",
            f"{row['present']:,}/{row['expected']:,}",
            f"{row['gaps']:,}",
            f"{row['quarantined']:,}",
        )
    return table


_TEXT = {"dataset", "exchange", "interval"}


# -- after a run: the summary -----------------------------------------------------------------


@dataclass
class RunSummary:
    """The end of a CLI run, from its typed report (or, for a failed run, its failures and
    the clients' request counts)."""

    title: str
    warehouse: str
    report: BackfillReport | None = None
    failures: list[str] = field(default_factory=list)
    requests: dict[str, dict[str, int]] = field(default_factory=dict)
    run_url: str | None = None

    def table(self) -> Table:
        table = Table(title=self.title, show_header=False)
        table.add_column("", style="bold")
        table.add_column("")
        bronze = self.report.bronze if self.report else None
        silver = self.report.silver if self.report else None
        requests = (bronze.requests if bronze and bronze.requests else None) or self.requests
        if self.report is not None:
            table.add_row("days", f"{self.report.days:,}")
        if bronze is not None:
            table.add_row(
                "bronze", f"{bronze.partitions:,} partition(s) fetched, {bronze.rows:,} rows"
            )
        if silver is not None:
            table.add_row(
                "silver",
                f"{silver.partitions:,} partition(s) built, {silver.rows:,} rows, "
                f"{len(silver.aggregates):,} aggregate(s)",
            )
            table.add_row("gaps", f"{silver.gaps:,}")
            table.add_row("quarantined", f"{silver.quarantined:,} rows")
        if self.report is not None and self.report.chunks:
            table.add_row("chunk runs", f"{self.report.chunks:,}")
        total = sum(r.get("requests", 0) + r.get("archive_requests", 0) for r in requests.values())
        if requests:
            detail = ", ".join(
                f"{exchange} {r.get('requests', 0) + r.get('archive_requests', 0):,}"
                + (f" ({r['archive_requests']:,} archive)" if r.get("archive_requests") else "")
                + (f" ({r['retries']:,} retries)" if r.get("retries") else "")
                + (f" ({r['rate_limited']:,} rate limited)" if r.get("rate_limited") else "")
                for exchange, r in sorted(requests.items())
            )
            table.add_row("requests", f"{total:,}: {detail}")
        else:
            table.add_row("requests", "0")
        failures = self.failures or (self.report.failures if self.report else [])
        table.add_row("failures", f"[red]{len(failures)}[/red]" if failures else "0")
        return table

    def lines(self) -> list[str]:
        """Where the data is and the flow run's page, whole (a table cell would cut them)."""
        found = [f"data: {self.warehouse}"]
        if self.run_url:
            found.append(f"flow run: {self.run_url}")
        return found

    def print(self, console: Console) -> None:
        console.print(self.table())
        for line in self.lines():
            console.print(line, highlight=False, soft_wrap=True)
