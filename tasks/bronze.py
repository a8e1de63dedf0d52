"""Bronze: fetch one exchange's dataset for one UTC day (all symbols) and store it raw."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import polars as pl
import pyarrow as pa

from clients.protocol import (
    ExchangeClient,
    ExchangeError,
    Instrument,
    UnavailableAtSource,
    UnknownSymbol,
)
from models.bronze import empty_bronze
from models.dates import day_start, is_closed
from models.enums import (
    EXCHANGE_DATASETS,
    OPEN_INTEREST_PERIOD,
    Dataset,
    Exchange,
    Interval,
    Layer,
    MarketKind,
)
from models.partitions import PartitionSpec
from models.silver import SILVER_KEYS
from storage import PartitionKey, Warehouse, WriteResult
from storage.planning import recorded_complete
from tasks.context import RunContext
from tasks.listings import TRADING_STATUSES, cached_history, known_in_history, listing_times
from tasks.progress import Progress
from tasks.runtime import run_logger, settle_heap, shared_gate
from tasks.transform.coverage import Judge, SymbolCounts, count_symbols, coverage_frame, settled
from tasks.transform.degrade import refused_symbols
from tasks.transform.silver_batch import Validated, validated


@dataclass
class FetchSummary:
    """What one partition fetch did; small and serialisable (a task result)."""

    partition: str
    rows: int = 0
    symbols_fetched: list[str] = field(default_factory=list)
    symbols_skipped_complete: list[str] = field(default_factory=list)
    symbols_not_listed: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    # not listed any more, but rows of this closed day are stored: those rows are kept
    symbols_kept_unlisted: list[str] = field(default_factory=list)
    # symbol -> why the source has no data for it that day (recorded unavailable at the source)
    symbols_unavailable: dict[str, str] = field(default_factory=dict)
    path: str | None = None
    closed: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class PartitionFetchFailed(Exception):
    """Some symbols of a partition could not be fetched; the others were stored."""

    def __init__(self, summary: FetchSummary) -> None:
        self.summary = summary
        detail = "; ".join(f"{sym}: {why}" for sym, why in sorted(summary.failures.items()))
        super().__init__(f"{summary.partition}: {detail}")

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (PartitionFetchFailed, (self.summary,))


class FetchesFailed(Exception):
    """Some of several fetches failed; the others were stored.

    `summaries` holds every fetch that got as far as a summary (failed symbols listed in
    each); `errors` names each failure, what failed first.
    """

    def __init__(self, summaries: list[FetchSummary], errors: list[str]) -> None:
        self.summaries = summaries
        self.errors = errors
        super().__init__(" | ".join(errors))

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.summaries, self.errors))


def _collect(labelled: Iterable[tuple[str, object]]) -> tuple[list[FetchSummary], list[str]]:
    """Summaries and named errors of gathered fetches. Each result is a summary, a list of
    them, or what the fetch raised: failures carrying summaries keep them, other errors are
    named after the label; a cancellation or interrupt is re-raised (not ours to keep)."""
    summaries: list[FetchSummary] = []
    errors: list[str] = []
    for label, result in labelled:
        if isinstance(result, PartitionFetchFailed):
            summaries.append(result.summary)
            errors.append(str(result))
        elif isinstance(result, FetchesFailed):
            summaries.extend(result.summaries)
            errors.extend(result.errors)
        elif isinstance(result, Exception):
            errors.append(f"{label}: {type(result).__name__}: {result}")
        elif isinstance(result, BaseException):
            raise result
        elif isinstance(result, list):
            summaries.extend(result)
        else:
            summaries.append(cast(FetchSummary, result))
    return summaries, errors


class DayFetchFailed(FetchesFailed):
    """Some partitions of an exchange's day (or days) failed; the others were stored."""

    @property
    def retryable(self) -> bool:
        """Whether a retry could help: some failure is not a client error."""
        return any(not ("BadRequest" in why or "not listed" in why) for why in self.errors)


def _kind(dataset: Dataset) -> MarketKind:
    return MarketKind.SPOT if dataset is Dataset.OHLCV else MarketKind.PERP


async def _fetch_symbol(client: ExchangeClient, spec: PartitionSpec, symbol: str) -> pl.DataFrame:
    start = day_start(spec.day)
    end = start + timedelta(days=1)
    if spec.dataset is Dataset.OHLCV:
        assert spec.interval is not None
        return await client.ohlcv(symbol, spec.interval, start, end)
    if spec.dataset is Dataset.FUNDING:
        return await client.funding(symbol, start, end)
    if spec.dataset is Dataset.OPEN_INTEREST:
        return await client.open_interest(symbol, start, end)
    raise ValueError(f"{spec.dataset} is not fetched per day")


def _grid(spec: PartitionSpec) -> Interval | None:
    """The grid a partition's rows are expected on (none for funding)."""
    if spec.dataset is Dataset.OPEN_INTEREST:
        return OPEN_INTEREST_PERIOD
    return spec.interval


def assess(spec: PartitionSpec, frame: pl.DataFrame) -> Validated:
    """The bronze rows of a partition judged as silver will judge them (good, quarantined)."""
    return validated(
        spec.dataset.value,
        frame,
        exchange=spec.exchange.value,
        interval=spec.interval,
        day=spec.day,
    )


# How each endpoint's depth is told in an unavailable record (else the depth itself).
DEPTH_NOTES: dict[tuple[str, str], str] = {
    ("binance", "open_interest"): "REST serves the last 30 days; no archive file for the day",
    ("okx", "funding"): "about 3 months",
    ("okx", "open_interest"): "1,440 h",
}


def depth_note(exchange: Exchange, dataset: Dataset, depth: timedelta) -> str:
    """How far back a source serves a dataset, as a reason names it."""
    note = DEPTH_NOTES.get((exchange.value, dataset.value))
    if note is not None:
        return note
    hours = int(depth.total_seconds() // 3600)
    return f"{hours // 24} days" if hours % 24 == 0 else f"{hours:,} h"


# Listing statuses of a listing that ended (Binance spot, USD-M; Coinbase; the clients' word for
# an instrument resolved by the exchange's id scheme), and ours for one resolved from history.
DELISTED_STATUSES = frozenset({"BREAK", "SETTLING", "CLOSE", "delisted", "unlisted"})
DROPPED = "dropped"


@dataclass
class SourceFacts:
    """What the source says about symbols of a partition beyond their rows: why a symbol has
    none (the client raised `UnavailableAtSource`), how far back the endpoint serves
    (`depth`), when a listing opened, and a listing's status when it is not trading."""

    unavailable: dict[str, str] = field(default_factory=dict)
    depth: timedelta | None = None
    depth_note: str = ""
    listed_at: dict[str, datetime] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)


def unavailable_reason(
    spec: PartitionSpec, symbol: str, facts: SourceFacts, *, now: datetime, settle_days: int
) -> str | None:
    """Why a symbol that has no row of a closed day never will (None: it may yet come)."""
    if symbol in facts.unavailable:
        return facts.unavailable[symbol]
    start = day_start(spec.day)
    end = start + timedelta(days=1)
    listed = facts.listed_at.get(symbol)
    if listed is not None and end <= listed:
        return f"before listing (listed {listed:%Y-%m-%d %H:%M} UTC)"
    if facts.depth is not None and start < now - facts.depth:
        return f"beyond the source's depth ({facts.depth_note})"
    status = facts.statuses.get(symbol)
    if status == DROPPED:
        return f"delisted (no longer in {spec.exchange.value}'s listing)"
    if status in DELISTED_STATUSES:
        return f"delisted (status {status} on {spec.exchange.value})"
    if status is not None:
        return f"not trading at the source (status {status} on {spec.exchange.value})"
    if settled(spec.day, now, settle_days):
        return f"no data at the source (none served {settle_days} days after the day)"
    return None


def bronze_coverage(
    spec: PartitionSpec,
    checked: Validated,
    symbols: list[str],
    *,
    closed: bool,
    now: datetime,
    settle_days: int,
    not_listed: Collection[str] = (),
    facts: SourceFacts | None = None,
) -> pl.DataFrame:
    """Coverage records of the symbols fetched in this run (`checked`: their rows judged by
    `assess`), complete only when nothing expected is missing or what is missing is a gap of
    the source (`Judge`, the rules of `judge_complete`), and of the symbols the exchange does
    not list. Counted, judged and built from the values in one pass (`count_symbols`).

    A symbol without any row of a closed day is never complete: it is *unavailable at the
    source* with the reason (`unavailable_reason`: the exchange dropped it, before its
    listing, beyond the endpoint's depth, delisted, or still nothing once the day settled),
    or else incomplete (fetched again). So is a symbol the exchange does not list, and one
    whose rows are all quarantined on a day beginning beyond the endpoint's depth."""
    facts = facts or SourceFacts()
    grid = _grid(spec)
    counts = count_symbols(
        checked.good,
        grid=grid,
        day=spec.day,
        symbols=[s for s in symbols if s not in not_listed],
        quarantined=checked.quarantine,
        closed=closed,
        now=now,
    )
    judge = Judge(grid=grid, day=spec.day, closed=closed, now=now, settle_days=settle_days)
    beyond_depth = facts.depth is not None and day_start(spec.day) < now - facts.depth
    complete: list[bool] = []
    gap_reason: list[str | None] = []
    unavailable: list[str | None] = []
    for record in counts:
        done, why = judge.counts(record)
        gone = None
        # Nothing of the symbol; or, on a day beginning beyond the source's depth, nothing
        # valid: the oldest row served (e.g. a funding event whose interval needs the one
        # before it) is judged by what lies beyond the depth, and the day is unavailable.
        if record.rows_present == 0 and (record.quarantined == 0 or beyond_depth):
            done = False
            if closed:
                gone = unavailable_reason(
                    spec, record.symbol, facts, now=now, settle_days=settle_days
                )
                why = None if gone else f"incomplete: no rows; fetched again until {judge.until}"
        complete.append(done)
        gap_reason.append(why)
        unavailable.append(gone or None)
    for symbol in sorted(not_listed):
        counts.append(SymbolCounts(symbol, 0, None, [], 0, None))
        complete.append(False)
        gap_reason.append(None)
        unavailable.append(f"not listed on {spec.exchange.value}" if closed else None)
    return coverage_frame(
        counts,
        layer=Layer.BRONZE.value,
        dataset=spec.dataset.value,
        exchange=spec.exchange.value,
        interval=spec.interval.value if spec.interval else None,
        day=spec.day,
        closed=closed,
        complete=complete,
        updated_at=now,
        gap_reason=gap_reason,
        unavailable=unavailable,
    )


async def fetch_partition(
    spec: PartitionSpec,
    symbols: list[str],
    *,
    ctx: RunContext,
    force: bool = False,
    repair: bool = False,
    client: ExchangeClient | None = None,
    complete: Collection[str] | None = None,
    coverage_batch: list[pl.DataFrame] | None = None,
) -> FetchSummary:
    """Fetch every symbol of a daily partition, merge with kept rows, write bronze atomically.

    Symbols already complete for a closed day are skipped unless `force` or `repair` (the
    stored file is damaged: it is replaced by a fresh fetch). A symbol the exchange does not
    list is skipped with a notice (its stored rows, if any, are kept). Failed symbols keep their
    stored rows; so do symbols whose answer would degrade a stored closed day (a valid row lost
    or now invalid: never degrade, even when forced; reported as a failure). If any failed,
    `PartitionFetchFailed` is raised after the rest has been written. `complete`: the symbols
    the coverage index records complete, when the caller has just read it (else it is read
    here). `coverage_batch`: the caller publishes the partition's coverage records (appended
    there, after the file is written) with others in one upsert; else they are published here.
    """
    log = run_logger()
    warehouse = ctx.warehouse
    now = datetime.now(UTC)
    closed = is_closed(spec.day, now=now)
    summary = FetchSummary(partition=spec.label, closed=closed)
    todo = list(symbols)
    if not force and not repair and closed:
        done = set(complete) & set(todo) if complete is not None else None
        if done is None:
            found = await asyncio.to_thread(recorded_complete, warehouse, [spec])
            done = found[spec] & set(todo)
        summary.symbols_skipped_complete = sorted(done)
        todo = [s for s in todo if s not in done]
    if not todo:
        return summary
    client = client or ctx.client(spec.exchange)
    kind = _kind(spec.dataset)

    resolved: dict[str, Instrument] = {}

    async def one(symbol: str) -> tuple[str, pl.DataFrame | None, str | None]:
        try:
            resolved[symbol] = await client.resolve(symbol, kind)
        except UnknownSymbol:
            found = await _resolve_unlisted(ctx, client, spec.exchange, symbol, kind)
            if found is None:
                return symbol, None, "not listed"
            resolved[symbol] = found
        try:
            return symbol, await _fetch_symbol(client, spec, symbol), None
        except UnavailableAtSource as exc:
            summary.symbols_unavailable[symbol] = f"delisted: {exc.reason}"
            return symbol, None, None
        except ExchangeError as exc:
            return symbol, None, str(exc)

    results = await asyncio.gather(*(one(s) for s in todo))
    frames: list[pl.DataFrame] = []
    for symbol, frame, problem in results:
        if problem == "not listed":
            summary.symbols_not_listed.append(symbol)
            log.info("%s: %s not listed on %s, skipped", spec.label, symbol, spec.exchange.value)
        elif problem is not None:
            summary.failures[symbol] = problem
        elif frame is not None:
            summary.symbols_fetched.append(symbol)
            frames.append(frame)
    for symbol, why in sorted(summary.symbols_unavailable.items()):
        log.info("%s: %s unavailable at the source: %s", spec.label, symbol, why)
    dropped: set[str] | None = None  # the facts of a closed day are gathered in the thread
    if closed:
        # not in today's listing (resolved from the listing history): dropped by the exchange
        natives = getattr(client, "natives", None)
        dropped = set()
        if natives is not None and resolved:
            listed = set(await natives(kind))
            dropped = {s for s, inst in resolved.items() if inst.native_symbol not in listed}

    def store() -> None:
        facts = None
        if dropped is not None:
            facts = _source_facts(ctx, client, spec, resolved, dropped, summary)
        _store_fetched(
            warehouse,
            spec,
            frames,
            summary,
            closed=closed,
            now=now,
            repair=repair,
            settle_days=ctx.settings.settle_days,
            coverage_batch=coverage_batch,
            facts=facts,
        )

    # The source's facts, merging, encoding and the fsyncs run in one thread (one hand-off
    # per partition): other partitions' HTTP goes on.
    await asyncio.to_thread(store)
    if summary.failures:
        raise PartitionFetchFailed(summary)
    return summary


async def _resolve_unlisted(
    ctx: RunContext,
    client: ExchangeClient,
    exchange: Exchange,
    symbol: str,
    kind: MarketKind,
) -> Instrument | None:
    """A symbol not in today's listing that the exchange's listing history knows (a backfill
    of a delisted symbol): resolved by the client from that history (`remember_listings`,
    `resolve(..., unlisted=True)`); None when the history does not know it either."""
    history = await asyncio.to_thread(cached_history, ctx.warehouse, exchange)
    if not known_in_history(history, symbol, kind, dropped=True):
        return None
    remember = getattr(client, "remember_listings", None)
    if remember is not None:
        remember(history)
    try:
        return await client.resolve(symbol, kind, unlisted=True)
    except UnknownSymbol:
        return None


def _source_facts(
    ctx: RunContext,
    client: ExchangeClient,
    spec: PartitionSpec,
    resolved: Mapping[str, Instrument],
    dropped: Collection[str],
    summary: FetchSummary,
) -> SourceFacts:
    """What `unavailable_reason` needs for a closed day's partition: the endpoint's depth,
    the listings' opening times (read only when a fetched symbol came back empty) and the
    statuses of listings not trading."""
    facts = SourceFacts(unavailable=dict(summary.symbols_unavailable))
    depth_of = getattr(client, "history_depth", None)
    depth = depth_of(spec.dataset) if depth_of is not None else None
    if depth is not None:
        facts.depth = depth
        facts.depth_note = depth_note(spec.exchange, spec.dataset, depth)
    facts.statuses = {
        symbol: DROPPED if symbol in dropped else inst.status
        for symbol, inst in resolved.items()
        if symbol in dropped or (inst.status and inst.status not in TRADING_STATUSES)
    }
    if summary.symbols_fetched:
        kind = _kind(spec.dataset).value
        times = listing_times(ctx.warehouse, spec.exchange)
        facts.listed_at = {
            symbol: datetime.fromtimestamp(times[(kind, symbol)] / 1000, tz=UTC)
            for symbol in summary.symbols_fetched
            if (kind, symbol) in times
        }
    return facts


async def fetch_day(
    specs: Sequence[PartitionSpec],
    symbols: Mapping[Dataset, Sequence[str]],
    *,
    ctx: RunContext,
    force: bool = False,
    repair: Collection[PartitionSpec] = (),
    coverage_batch: list[pl.DataFrame] | None = None,
    complete: Mapping[PartitionSpec, Collection[str]] | None = None,
) -> list[FetchSummary]:
    """Fetch several partitions (one exchange's day: every dataset and interval) at once.

    Each partition is `fetch_partition` (`repair` lists those whose stored file is damaged;
    `coverage_batch` as there). `complete`: what `recorded_complete` says of `specs`, when
    the caller has just read it (else it is read here).
    Raises `DayFetchFailed` once all have finished if any failed; the others are stored.
    """
    if complete is None:
        skip_complete = not force and any(is_closed(spec.day) for spec in specs)
        complete = (
            await asyncio.to_thread(recorded_complete, ctx.warehouse, specs)
            if skip_complete
            else {}
        )
    results = await asyncio.gather(
        *(
            fetch_partition(
                spec,
                list(symbols[spec.dataset]),
                ctx=ctx,
                force=force,
                repair=spec in repair,
                complete=complete.get(spec, set()),
                coverage_batch=coverage_batch,
            )
            for spec in specs
        ),
        return_exceptions=True,
    )
    summaries, errors = _collect(zip((s.label for s in specs), results, strict=True))
    if errors:
        raise DayFetchFailed(summaries, errors)
    return summaries


def _store_fetched(
    warehouse: Warehouse,
    spec: PartitionSpec,
    frames: list[pl.DataFrame],
    summary: FetchSummary,
    *,
    closed: bool,
    now: datetime,
    repair: bool,
    settle_days: int,
    coverage_batch: list[pl.DataFrame] | None = None,
    facts: SourceFacts | None = None,
) -> None:
    """Merge the fetched symbols with the stored rows kept, write the file, record coverage
    (upserted now, or appended to `coverage_batch` for the caller to publish).

    Never degrade a closed day: a fetched symbol whose answer lacks (or invalidates) a valid
    stored row keeps its stored rows and becomes a failure; a symbol the exchange no longer
    lists keeps its stored rows (and its coverage). Updates `summary` (path, rows).
    """
    key = PartitionKey.of(spec)
    stored = _read_stored(warehouse, key) if repair else warehouse.read(key)
    if stored is not None and stored.is_empty():
        stored = None
    schema_frame = _empty_bronze(spec.exchange, spec.dataset)
    # In symbol order (a client's frame holds one symbol): the merged file below then needs
    # no sort when no stored rows are kept. The judgement of `offered` does not depend on its
    # row order (`dedup_latest` sorts by key).
    # One chunk: the file is then encoded in one page run per column, not one per symbol.
    offered = pl.concat(
        [schema_frame, *sorted(frames, key=_first_symbol)], how="vertical_relaxed", rechunk=True
    )
    stored_symbols = set(stored.get_column("symbol").unique()) if stored is not None else set()
    checked: Validated | None = None  # `offered` judged once, for the guard and for coverage
    refused: Validated | None = None  # the stored rows kept of the symbols refused
    if closed and stored is not None:
        offered, checked, refused = _refuse_degraded(spec, stored, offered, summary)
    unlisted_kept = sorted(set(summary.symbols_not_listed) & stored_symbols)
    summary.symbols_kept_unlisted = unlisted_kept
    for symbol in unlisted_kept:
        run_logger().warning(
            "%s: %s not listed on %s; its stored rows are kept",
            spec.label,
            symbol,
            spec.exchange.value,
        )
    written: WriteResult | None = None
    if summary.symbols_fetched:
        merged = offered  # nothing stored: `offered` holds the schema's columns already
        if stored is not None:
            kept = stored.filter(~pl.col("symbol").is_in(summary.symbols_fetched))
            # diagonal: files stored before a column was added (Binance `source`) lack it
            merged = pl.concat([offered, kept], how="diagonal_relaxed")
        if not merged.get_column("symbol").is_sorted():  # a stable sort of sorted rows is a no-op
            merged = merged.sort("symbol", maintain_order=True)
        window = (day_start(spec.day), day_start(spec.day) + timedelta(days=1))
        # The per-symbol guard above replaces the row count check of `Warehouse.write`.
        written = warehouse.write(key, merged, closed=closed, window=window, force=True)
        summary.path = written.path
        summary.rows = written.rows
    unlisted = [s for s in summary.symbols_not_listed if s not in stored_symbols]
    # the exchange dropped these: recorded unavailable, unless rows of the day are stored
    gone = [s for s in summary.symbols_unavailable if s not in stored_symbols]
    coverage_symbols = summary.symbols_fetched + gone + unlisted
    parts = []
    if coverage_symbols:
        judged = checked if checked is not None else assess(spec, offered)
        parts.append((judged, coverage_symbols))
    if refused is not None:
        # A refused symbol's record describes the rows it keeps (it may have been marked not
        # complete to be fetched again, e.g. a replaced archive file): a later run does not
        # ask the worse answer again. This run still fails, naming the symbol.
        parts.append((refused, sorted(set(refused.good.get_column("symbol")))))
    if parts:
        records = pl.concat(
            [
                bronze_coverage(
                    spec,
                    judged,
                    symbols,
                    closed=closed,
                    now=now,
                    settle_days=settle_days,
                    not_listed=unlisted,
                    facts=facts,
                )
                for judged, symbols in parts
            ],
            how="diagonal_relaxed",
        )
        records = written.stamp_records(records) if written else records
        if coverage_batch is None:
            warehouse.coverage.upsert(records)
        else:
            coverage_batch.append(records)  # list.append is atomic: threads may share it


# The empty frame of each bronze schema, built once (~0.5 ms each; frames are not modified in
# place here, only concatenated).
_empty_bronze = functools.cache(empty_bronze)


def _first_symbol(frame: pl.DataFrame) -> str:
    """The symbol of a frame's first row ("" when it has none: nothing to place)."""
    return str(frame.get_column("symbol")[0]) if frame.height else ""


def _read_stored(warehouse: Warehouse, key: PartitionKey) -> pl.DataFrame | None:
    """The stored rows, or None if the file is missing or does not read back."""
    try:
        return warehouse.read(key)
    except (pa.ArrowException, OSError) as exc:
        run_logger().warning("%s: stored file unreadable, replacing it: %s", key, exc)
        return None


def _refuse_degraded(
    spec: PartitionSpec, stored: pl.DataFrame, offered: pl.DataFrame, summary: FetchSummary
) -> tuple[pl.DataFrame, Validated | None, Validated | None]:
    """`offered` without the fetched symbols whose answer would degrade the stored closed day
    (a valid stored row lost or now invalid, judged by `assess`); each refused symbol keeps
    its stored rows (merged back as unfetched) and is reported as a failure.

    Also returns the judgement of the rows kept (`assess` of the returned frame, None when
    nothing was judged), so coverage does not judge them again: `assess` judges each symbol's
    rows on their own, so leaving a symbol out of its result equals judging the rest; and the
    judgement of the refused symbols' stored rows (None when none was refused), which their
    coverage records then describe."""
    fetched = summary.symbols_fetched
    before = stored.filter(pl.col("symbol").is_in(fetched))
    if before.is_empty():
        return offered, None, None
    old, new = assess(spec, before), assess(spec, offered)
    refused = refused_symbols(
        old.good,
        new.good,
        SILVER_KEYS[spec.dataset.value],
        offered_quarantine=new.quarantine,
    )
    if not refused:
        return offered, new, None
    for symbol, why in refused.items():
        summary.symbols_fetched.remove(symbol)
        summary.failures[symbol] = f"refused the exchange's answer for this closed day: {why}"
    gone = pl.col("symbol").is_in(list(refused))
    return offered.filter(~gone), _without_symbols(new, ~gone), _without_symbols(old, gone)


def _without_symbols(checked: Validated, kept: pl.Expr) -> Validated:
    """`checked` restricted to the rows `kept` selects (by symbol), counts left as they were
    (coverage reads only the rows)."""
    return Validated(
        checked.good.filter(kept), checked.quarantine.filter(kept), checked.source, checked.counts
    )


async def fetch_instruments(
    exchange: Exchange,
    *,
    ctx: RunContext,
    client: ExchangeClient | None = None,
) -> FetchSummary:
    """Snapshot the exchange's spot and perpetual listings into today's bronze partition."""
    client = client or ctx.client(exchange)
    today = datetime.now(UTC).date()
    frames = [await client.instruments(MarketKind.SPOT)]
    if Dataset.FUNDING in EXCHANGE_DATASETS[exchange]:
        frames.append(await client.instruments(MarketKind.PERP))
    frame = pl.concat(frames, how="vertical_relaxed")
    result = ctx.warehouse.write(PartitionKey.instruments(exchange, today), frame, closed=False)
    return FetchSummary(
        partition=f"{exchange.value}/instruments/{today.isoformat()}",
        rows=result.rows,
        path=result.path,
        closed=False,
    )


class InstrumentsFailed(FetchesFailed):
    """Some exchanges' listings could not be snapshot; the others were stored."""


async def fetch_all_instruments(
    exchanges: Sequence[Exchange], *, ctx: RunContext
) -> list[FetchSummary]:
    """`fetch_instruments` for every exchange at once (a request or two each: one task, not
    one per exchange). Raises `InstrumentsFailed` naming each exchange that failed once the
    others are stored."""
    results = await asyncio.gather(
        *(fetch_instruments(exchange, ctx=ctx) for exchange in exchanges),
        return_exceptions=True,
    )
    labels = (f"{exchange.value}/instruments" for exchange in exchanges)
    summaries, errors = _collect(zip(labels, results, strict=True))
    if errors:
        raise InstrumentsFailed(summaries, errors)
    return summaries


# Days of one exchange fetched at once in this process, across all tasks holding its days.
DAYS_AT_ONCE = 4


async def fetch_days(
    specs: Sequence[PartitionSpec],
    symbols: Mapping[Dataset, Sequence[str]],
    *,
    ctx: RunContext,
    force: bool = False,
    repair: Collection[PartitionSpec] = (),
    days_at_once: int = DAYS_AT_ONCE,
    progress: Progress | None = None,
) -> list[FetchSummary]:
    """Fetch several days' partitions: `fetch_day` for each exchange and day, at most
    `days_at_once` days of an exchange at once in this process (a gate shared by every task).

    A failing day does not stop the others. Raises `DayFetchFailed` with every day's
    summaries and errors once all days have run if any failed; the other days are stored. On
    a retry, the symbols of closed days already recorded complete are skipped
    (`fetch_partition`). The coverage of every partition written is published in one upsert
    once the days have ended, failed or not (one per partition cost ~15 % of a backfill's
    fetch time); a process killed before that leaves those days unrecorded, so they are
    fetched again, never marked complete without their file.
    """
    settle_heap()
    coverage_batch: list[pl.DataFrame] = []
    by_day: dict[tuple[Exchange, date], list[PartitionSpec]] = {}
    for spec in specs:
        by_day.setdefault((spec.exchange, spec.day), []).append(spec)
    # What the index records complete, read once for every day (was one read per day: a
    # query of the index each, ~1 s of a year's backfill); this call publishes its own
    # coverage only once its days have ended, so the days would read the same.
    skip_complete = not force and any(is_closed(spec.day) for spec in specs)
    complete = (
        await asyncio.to_thread(recorded_complete, ctx.warehouse, specs) if skip_complete else {}
    )

    async def one(exchange: Exchange, day: date, day_specs: list[PartitionSpec]) -> Any:
        async with shared_gate(f"fetch-days:{exchange.value}", days_at_once):
            try:
                return await fetch_day(
                    day_specs,
                    symbols,
                    ctx=ctx,
                    force=force,
                    repair=repair,
                    coverage_batch=coverage_batch,
                    complete=complete,
                )
            finally:
                if progress is not None:
                    progress.report(len(day_specs))

    groups = sorted(by_day.items())
    try:
        results = await asyncio.gather(
            *(one(e, d, g) for (e, d), g in groups), return_exceptions=True
        )
    finally:
        if coverage_batch:
            records = pl.concat(coverage_batch, how="diagonal_relaxed")
            await asyncio.to_thread(ctx.warehouse.coverage.upsert, records)
    labels = (f"{exchange.value}/{day}" for (exchange, day), _ in groups)
    summaries, errors = _collect(zip(labels, results, strict=True))
    if errors:
        raise DayFetchFailed(summaries, errors)
    return summaries
