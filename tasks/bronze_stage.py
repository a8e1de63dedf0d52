"""The bronze stage of a run: snapshot listings, refuse unlisted symbols, then fetch every
planned partition in units of an exchange's chunk of days."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import date

from clients.protocol import ExchangeError
from models.enums import EXCHANGE_DATASETS, Dataset, Exchange, Layer, MarketKind
from models.errors import InputError
from models.partitions import PartitionSpec
from models.selection import RunRequest
from models.symbols import is_rule, parse_rule
from storage.planning import Plan, describe, plan
from storage.snapshots import has_fresh_snapshot, latest_instruments, newest_snapshots
from tasks.archive_recheck import recheck_archive
from tasks.bronze import FetchesFailed, FetchSummary
from tasks.chunks import day_span, fetch_groups
from tasks.context import RunContext
from tasks.listings import LISTING_COLUMNS, check_listed, listing_history, resolve_rules
from tasks.progress import Progress
from tasks.reports import BronzeReport
from tasks.runtime import run_logger
from tasks.units import DIRECT, Units

# Fetch units of one exchange running at once; within them, at most `tasks.bronze.DAYS_AT_ONCE`
# days of the exchange are fetched at once, and the clients' rate limiters set the pace.
PER_EXCHANGE_CONCURRENCY = 4


def _collect(report: BronzeReport, label: str, error: Exception) -> list[FetchSummary]:
    """Record a unit's failure in `report`; returns the summaries it carried."""
    if isinstance(error, FetchesFailed):
        report.failures.extend(error.errors)
        return list(error.summaries)
    report.failures.append(f"{label}: {type(error).__name__}: {error}")
    return []


async def refresh_instruments(
    request: RunRequest, ctx: RunContext, units: Units, report: BronzeReport
) -> RunRequest:
    """Snapshot listings once a day per exchange, resolve symbol rules (`top:N`, `all:QUOTE`)
    from the snapshots, then refuse symbols no exchange lists, today or in its listing
    history (notices for the exchanges that do not list one); returns the request as run."""
    warehouse = ctx.warehouse
    newest = newest_snapshots(warehouse)
    stale = [
        e
        for e in request.exchanges
        if request.force or not has_fresh_snapshot(warehouse, e, newest=newest)
    ]
    if stale:  # one unit for all: a request or two per exchange
        try:
            report.summaries.extend(await units.fetch_instruments(stale, ctx))
        except Exception as exc:
            names = ", ".join(e.value for e in stale)
            failed = BronzeReport()
            report.summaries.extend(_collect(failed, f"instruments of {names}", exc))
            for line in failed.failures:
                _stale_or_failed(line, stale, newest, report)
        newest = newest_snapshots(warehouse)
    if request.rules:
        request = await resolve_universe(request, ctx, newest, report)
    listings = {
        e: frame
        for e in request.exchanges
        if (frame := latest_instruments(warehouse, e, newest=newest, columns=LISTING_COLUMNS))
        is not None
    }
    if len(listings) == len(request.exchanges):
        try:
            report.notices.extend(check_listed(request, listings))
        except InputError:  # maybe a symbol no longer listed: its history may know it
            histories = await asyncio.to_thread(
                lambda: {e: listing_history(warehouse, e, newest_bronze=newest) for e in listings}
            )
            report.notices.extend(check_listed(request, listings, histories))
    return request


def _stale_or_failed(
    line: str, stale: list[Exchange], newest: dict[str, date], report: BronzeReport
) -> None:
    """A listings refresh that failed: a notice when every exchange it names has an older
    snapshot to use (so an unreachable exchange does not fail a run that does not need it),
    else a failure of the run."""
    named = [e for e in stale if line.startswith(f"{e.value}/")] or stale
    if all(e.value in newest for e in named):
        days = ", ".join(f"{e.value} {newest[e.value]}" for e in named)
        report.notices.append(f"listings not refreshed, using the last snapshot ({days}): {line}")
    else:
        report.failures.append(line)


PERP_SUFFIX = " (perp)"


async def resolve_universe(
    request: RunRequest, ctx: RunContext, newest: dict[str, date], report: BronzeReport
) -> RunRequest:
    """The request with each symbol rule resolved once, from each exchange's newest listing
    snapshot (and its 24 h quote volumes for `top`): spot rules over the exchanges' spot
    pairs, perpetual rules over their perpetuals. Recorded in `report.universe` (a rule of
    the perpetual symbols as `top:3 (perp)`)."""
    log = run_logger()
    resolved: dict[MarketKind, dict[str, list[str]]] = {MarketKind.SPOT: {}, MarketKind.PERP: {}}
    for symbols, kind in (
        (request.symbols, MarketKind.SPOT),
        (request.perp_symbols, MarketKind.PERP),
    ):
        exchanges = [
            e
            for e in request.exchanges
            if kind is MarketKind.SPOT or Dataset.FUNDING in EXCHANGE_DATASETS[e]
        ]
        wanted = (
            {Dataset.OHLCV} if kind is MarketKind.SPOT else {Dataset.FUNDING, Dataset.OPEN_INTEREST}
        )
        for text in symbols:
            if not is_rule(text) or text in resolved[kind]:
                continue
            if not exchanges or not wanted & set(request.datasets):
                resolved[kind][text] = []  # not asked for: nothing to resolve
                continue
            rule = parse_rule(text)
            snapshots = {
                e: frame
                for e in exchanges
                if (frame := latest_instruments(ctx.warehouse, e, newest=newest)) is not None
            }
            volumes: dict[Exchange, dict[str, float]] | None = None
            if rule.rule == "top":
                volumes = {}
                for e in list(snapshots):
                    try:
                        volumes[e] = await ctx.client(e).quote_volumes(kind)  # type: ignore[attr-defined]
                    except ExchangeError as exc:
                        log.warning("symbol rule %s: no 24h volumes from %s: %s", text, e, exc)
                        del snapshots[e]
            found = resolve_rules(rule, snapshots, volumes, kind=kind)
            if not found:
                names = ", ".join(e.value for e in exchanges)
                raise InputError(
                    f"symbol rule {text} names no {kind.value} pair on any of: {names}"
                )
            resolved[kind][text] = found
            log.info("symbol rule %s (%s): %s", text, kind.value, ", ".join(found))
    report.universe = {
        **resolved[MarketKind.SPOT],
        **{f"{rule}{PERP_SUFFIX}": found for rule, found in resolved[MarketKind.PERP].items()},
    }
    return request.with_universe(resolved[MarketKind.SPOT], resolved[MarketKind.PERP])


async def fetch_planned(
    request: RunRequest,
    ctx: RunContext,
    units: Units,
    report: BronzeReport,
    specs: Plan | None = None,
) -> list[PartitionSpec]:
    """Plan from coverage (unless `specs` is that plan already), then one unit per group of
    `fetch_groups` (an exchange's chunk of days), at most `PER_EXCHANGE_CONCURRENCY` at once
    per exchange; returns the plan."""
    log = run_logger()
    specs = specs if specs is not None else plan(ctx.warehouse, Layer.BRONZE, request)
    specs = await recheck_archive(ctx, request, specs)  # opt-in: replaced archive files
    for spec, why in specs.damaged.items():
        log.warning("bronze %s is damaged, redoing it: %s", spec.label, why)
    for line in describe(specs):
        log.info("bronze to fetch: %s", line)
    progress = Progress("bronze", total=len(specs))
    progress.update()
    symbols = request.symbol_map()
    gates: dict[Exchange, asyncio.Semaphore] = defaultdict(
        lambda: asyncio.Semaphore(PER_EXCHANGE_CONCURRENCY)
    )

    async def one(exchange: Exchange, days: list[date], group: list[PartitionSpec]) -> None:
        failed = 0
        try:
            async with gates[exchange]:
                summaries = await units.fetch_days(
                    exchange,
                    days,
                    group,
                    symbols,
                    ctx,
                    force=request.force,
                    repair=[s for s in group if s in specs.damaged],
                    progress=progress,
                )
        except Exception as exc:
            summaries = _collect(report, f"{exchange.value}/{day_span(days)}", exc)
            # partitions with no summary (the whole day failed) or with failed symbols
            failed = len(group) - sum(1 for s in summaries if not s.failures)
        report.summaries.extend(summaries)
        progress.unit_ended(len(group), failed)
        progress.update(requests=sum(s["requests"] for s in ctx.client_stats().values()))

    await asyncio.gather(*(one(e, d, g) for e, d, g in fetch_groups(specs)))
    progress.update(rows=report.rows)
    return specs


async def run_bronze(request: RunRequest, ctx: RunContext, units: Units = DIRECT) -> BronzeReport:
    """Instruments snapshot, listing check, then every planned partition; never raises on
    partition failures (they are named in the report's `failures`)."""
    report = BronzeReport(request=request)
    try:
        # With nothing to fetch (and no symbol rule to resolve), the listings are not needed:
        # a re-run of complete days never contacts the exchanges.
        planned = None if request.rules else plan(ctx.warehouse, Layer.BRONZE, request)
        if planned is None or planned or request.force:
            request = await refresh_instruments(request, ctx, units, report)
            report.request = request
        for notice in report.notices:
            run_logger().info(notice)
        specs = await fetch_planned(request, ctx, units, report, planned)
        report.requests = ctx.client_stats()
        if specs:  # the next run (often a fresh process) then reads one coverage file
            await asyncio.to_thread(ctx.warehouse.coverage.compact)
    finally:
        await ctx.aclose()
    return report
