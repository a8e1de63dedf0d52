"""Binance archive files replaced after they were stored: found by their `.CHECKSUM`, redone.

Binance sometimes replaces a file of its public archive (binance-public-data README,
"Updates"). Every bronze row read from the archive names its file and the first 16 hex digits
of the file's SHA-256 in `source` (`archive:BTCUSDT-1m-2024-03.zip:1a2b3c4d5e6f7a8b`).
`recheck_archive` reads the `symbol` and `source` columns of the closed Binance partitions of
a request that the plan leaves alone (recorded complete), asks the archive once for each
distinct file's `.CHECKSUM` (~100 bytes; a month of 1m candles of a symbol is one file), and
for a file whose served checksum differs marks the bronze coverage of the symbols holding its
rows not complete (with the reason) and adds their partitions to the plan. The bronze stage
then fetches those symbols again, as it fetches any symbol not complete (the new file's rows
carry its new checksum; the other symbols of the day keep their stored rows, untouched), and
merges them under the never-degrade rule, so a replacement that loses or invalidates a stored
row of a symbol keeps that symbol's stored rows and is reported as a failure (good data is
never replaced by less).

Opt-in (`--recheck-archive`, `CRYPTO_PIPELINE_BINANCE_ARCHIVE_RECHECK=true`), with source
`auto` or `archive`: without it a re-run of complete days makes no request at all (what the
pipeline promises and its tests hold), and replacements are rare, so a periodic run with the
flag (e.g. weekly over the stored history) finds them at one small request per stored file.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from clients.binance import BinanceClient
from clients.binance_archive import ArchiveUnavailable, StoredFile
from models.dates import is_closed
from models.enums import Dataset, Exchange, Layer, MarketKind
from models.partitions import RESAMPLED_FROM, PartitionSpec
from models.selection import RunRequest
from storage.discard import mark_stale
from storage.layout import PartitionKey
from storage.planning import Plan
from storage.warehouse import Warehouse
from tasks.context import RunContext

log = logging.getLogger(__name__)

# .CHECKSUM requests in flight at once (small answers; the archive is a CDN).
CONCURRENCY = 8
ARCHIVE_DATASETS = frozenset({Dataset.OHLCV, Dataset.FUNDING, Dataset.OPEN_INTEREST})


def _kind(dataset: Dataset) -> MarketKind:
    """The market a dataset's klines come from (as the bronze stage fetches them)."""
    return MarketKind.SPOT if dataset is Dataset.OHLCV else MarketKind.PERP


StoredRows = dict[StoredFile, dict[PartitionSpec, set[str]]]


def stored_files(
    warehouse: Warehouse, specs: list[PartitionSpec]
) -> dict[tuple[str, str], StoredRows]:
    """Per (archive path, file name): each stored checksum of it, the partitions holding rows
    from it and the symbols of those rows, read from the `symbol` and `source` columns only. A
    file that does not read back is left to the plan's damage check."""
    found: dict[tuple[str, str], StoredRows] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(set))
    )
    for spec in specs:
        key = PartitionKey.of(spec)
        try:
            frame = warehouse.read(key, columns=["symbol", "source"])
        except Exception as exc:  # no `source` column (older file) or unreadable (the plan's
            # damage check names and redoes those): nothing to compare
            log.warning("archive recheck: %s skipped: %s", warehouse.path(key), exc)
            continue
        if frame is None or "source" not in frame.columns:
            continue
        pairs = frame.select("symbol", "source").unique().drop_nulls().iter_rows()
        for symbol, label in pairs:
            try:
                stored = StoredFile.parse(label)
                path = stored.path(_kind(spec.dataset)) if stored else None
            except ValueError as exc:
                raise ValueError(f"{warehouse.path(key)}: {exc}") from None
            if stored is not None and path is not None:
                found[(path, stored.name)][stored][spec].add(symbol)
    return found


def built_from(request: RunRequest, spec: PartitionSpec) -> list[PartitionSpec]:
    """The silver partitions of `request` built from bronze `spec`: the same series, and the
    intervals resampled from it (e.g. Coinbase 4h from 1h)."""
    return [
        built
        for built in request.partitions(derived=True)
        if (built.exchange, built.dataset, built.day) == (spec.exchange, spec.dataset, spec.day)
        and (
            built.interval == spec.interval
            or (built.interval is not None and RESAMPLED_FROM.get(built.interval) == spec.interval)
        )
    ]


def _mark_replaced(
    warehouse: Warehouse,
    request: RunRequest,
    replaced: dict[PartitionSpec, str],
    symbols: dict[PartitionSpec, set[str]],
) -> None:
    """The bronze records of the replaced files' symbols marked not complete (fetched again
    by this run's bronze stage, or the next one if this one fails), and the silver built from
    them (rebuilt by the next silver run; marked now, before the re-ingest: a rebuild from
    unchanged bronze is harmless, a silver day left on the old file's values is not)."""
    mark_stale(warehouse, Layer.BRONZE, replaced, symbols)
    stale = {
        built: f"bronze re-ingested: {why}"
        for spec, why in replaced.items()
        for built in built_from(request, spec)
    }
    mark_stale(warehouse, Layer.SILVER, stale)


async def recheck_archive(ctx: RunContext, request: RunRequest, planned: Plan) -> Plan:
    """`planned` plus the closed Binance partitions holding rows of an archive file replaced
    at the source since, whose symbols from that file are now recorded not complete (the
    reason names the stored and served checksums). Unchanged unless the settings ask for it
    (`binance_archive_recheck`) and the source is `auto` or `archive`."""
    settings = ctx.settings
    if not settings.binance_archive_recheck or settings.binance_source == "rest":
        return planned
    todo = set(planned)
    candidates = [
        spec
        for spec in request.partitions(derived=False)
        if spec.exchange is Exchange.BINANCE
        and spec.dataset in ARCHIVE_DATASETS
        and spec not in todo
        and is_closed(spec.day)
    ]
    if not candidates:
        return planned
    files = await asyncio.to_thread(stored_files, ctx.warehouse, candidates)
    client = ctx.client(Exchange.BINANCE)
    if not isinstance(client, BinanceClient):  # pragma: no cover - the factory's Binance client
        return planned
    gate = asyncio.Semaphore(CONCURRENCY)

    async def served(path: str) -> str | None:
        async with gate:
            return await client.archive.served_checksum(path)

    keys = list(files)
    answers = await asyncio.gather(*(served(path) for path, _ in keys), return_exceptions=True)
    replaced: dict[PartitionSpec, str] = {}
    symbols: dict[PartitionSpec, set[str]] = defaultdict(set)
    for (path, name), answer in zip(keys, answers, strict=True):
        if isinstance(answer, ArchiveUnavailable):
            log.warning("archive recheck: %s", answer)
            continue
        if isinstance(answer, BaseException):
            raise answer
        for stored, held in files[(path, name)].items():
            if answer is None:
                why = f"archive file {name} withdrawn at the source (its .CHECKSUM is 404)"
                log.warning("archive recheck: %s; stored rows kept", why)
                continue  # nothing to re-ingest from; the stored rows stay
            if answer.startswith(stored.sha256_prefix):
                continue
            why = (
                f"archive file {name} replaced at the source "
                f"(stored {stored.sha256_prefix}…, served {answer[:16]}…)"
            )
            for spec, names in held.items():
                replaced.setdefault(spec, why)
                symbols[spec] |= names
    if not replaced:
        log.info("archive recheck: %d stored archive files unchanged", len(keys))
        return planned
    for spec, why in replaced.items():
        log.warning(
            "bronze %s: %s; re-ingesting %s", spec.label, why, ", ".join(sorted(symbols[spec]))
        )
    await asyncio.to_thread(_mark_replaced, ctx.warehouse, request, replaced, symbols)
    order = [s for s in request.partitions(derived=False) if s in todo or s in replaced]
    return Plan(order, dict(planned.damaged))
