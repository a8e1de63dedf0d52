"""Silver partitions: one bronze partition into validated silver rows, quarantine and coverage;
and one interval's cross-exchange aggregate of a day."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pyarrow as pa

from models.dates import is_closed
from models.enums import Dataset, Exchange, Interval, Layer
from models.partitions import PartitionSpec
from models.silver import SILVER_KEYS, SILVER_SCHEMAS
from storage import PartitionKey, ShrinkRefused, Warehouse
from storage.parquet import decode
from storage.planning import BronzeComplete
from tasks.transform.coverage import ohlcv_coverage
from tasks.transform.degrade import keep_stored, refused_symbols
from tasks.transform.ohlcv import BRONZE_COLUMNS, resample_ohlcv
from tasks.transform.silver_batch import build_silver
from tasks.transform.validate import validate


@dataclass
class SilverSummary:
    """What one silver partition build did (a small task result)."""

    partition: str
    rows: int = 0
    quarantined: int = 0
    gaps: int = 0
    gap_minutes: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    path: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _resampled_batch(
    warehouse: Warehouse,
    spec: PartitionSpec,
    symbols: list[str],
    *,
    closed: bool,
    bronze_complete: BronzeComplete,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """A derived interval (Coinbase 4h): its complete buckets from the stored silver candles
    of its source interval (1h) of the same day."""
    assert spec.interval is not None
    source = spec.source()
    finer = warehouse.read(PartitionKey.of(source, Layer.SILVER))
    complete = bronze_complete(source, symbols)
    frame = resample_ohlcv(finer, spec.interval) if finer is not None else None
    if frame is None or frame.is_empty():
        frame = pl.DataFrame(schema=SILVER_SCHEMAS["ohlcv"])
    good, quarantine = validate(frame, "ohlcv", interval=spec.interval, day=spec.day)
    coverage = ohlcv_coverage(
        good,
        exchange=spec.exchange.value,
        interval=spec.interval,
        day=spec.day,
        symbols=symbols,
        quarantined=quarantine,
        closed=closed,
        complete=complete and closed,
    )
    return good, quarantine, coverage


@dataclass
class BuiltPartition:
    """A silver partition written, with what the caller still has to publish or may reuse."""

    summary: SilverSummary
    data: pl.DataFrame | None = None  # the rows written (None when the write was refused)
    coverage: pl.DataFrame | None = None  # records to upsert, stamped with the written file


def write_partition(
    warehouse: Warehouse,
    spec: PartitionSpec,
    symbols: list[str],
    *,
    force: bool,
    bronze_complete: BronzeComplete,
) -> BuiltPartition:
    """Build (or rebuild) the silver partition of `spec` from what bronze holds and write it.

    Coverage is not published here: the records are returned for the caller to publish after
    the data, several partitions at once."""
    now = datetime.now(UTC)
    closed = is_closed(spec.day, now=now)
    summary = SilverSummary(partition=spec.label)
    gap_totals: tuple[int, float] | None = None  # of `coverage`, when the batch counted them
    if not spec.is_native:
        data, quarantine, coverage = _resampled_batch(
            warehouse, spec, symbols, closed=closed, bronze_complete=bronze_complete
        )
        summary.counts = {"input": data.height + quarantine.height, "good": data.height}
    else:
        # only the columns the normalizer reads (candles: a third of Binance's are not)
        columns = BRONZE_COLUMNS.get(spec.exchange) if spec.dataset is Dataset.OHLCV else None
        bronze = (
            read_columns(warehouse, PartitionKey.of(spec), columns)
            if columns
            else warehouse.read(PartitionKey.of(spec))
        )
        if bronze is None:
            from models.bronze import empty_bronze

            bronze = empty_bronze(spec.exchange, spec.dataset)
        previous = None
        if spec.dataset is Dataset.FUNDING:
            previous = warehouse.read(
                PartitionKey.of(
                    spec.model_copy(update={"day": spec.day - timedelta(days=1)}), Layer.SILVER
                )
            )
        batch = build_silver(
            spec.dataset.value,
            bronze,
            exchange=spec.exchange.value,
            interval=spec.interval,
            day=spec.day,
            symbols=symbols,
            closed=closed,
            complete=closed and bronze_complete(spec, symbols),
            previous=previous,
            now=now,
        )
        data, quarantine, coverage = batch.data, batch.quarantine, batch.coverage
        if spec.interval is None:  # coverage is keyed like the partition (no interval level)
            coverage = coverage.with_columns(pl.lit(None, dtype=pl.String).alias("interval"))
        summary.counts = dict(batch.counts)
        gap_totals = (batch.counts["gaps"], batch.gap_minutes)
    unavailable = getattr(bronze_complete, "unavailable", None)  # a plain callable: none
    if unavailable is not None:
        coverage = mark_unavailable(coverage, unavailable(spec.source()))
    key = PartitionKey.of(spec, Layer.SILVER)
    if closed:
        offered = coverage
        data, coverage, refused = _never_degrade(warehouse, key, data, quarantine, coverage)
        if coverage is not offered:  # some symbols keep their stored records
            gap_totals = None
        if refused:
            summary.error = "; ".join(f"{sym}: {why}" for sym, why in sorted(refused.items()))
    try:
        result = warehouse.write(key, data, closed=closed, force=force)
        summary.path = result.path
        summary.rows = result.rows
    except ShrinkRefused as exc:
        summary.error = str(exc)
        return BuiltPartition(summary)
    rejected = PartitionKey.of(spec, Layer.QUARANTINE)
    if not quarantine.is_empty() or warehouse.exists(rejected):
        warehouse.write(rejected, quarantine, closed=False, force=True)
    summary.quarantined = quarantine.height
    built = BuiltPartition(summary, data=data)
    if not coverage.is_empty():
        built.coverage = result.stamp_records(coverage)
        # `mark_unavailable` and stamping leave the gaps as the batch counted them
        summary.gaps, summary.gap_minutes = gap_totals or _gap_totals(coverage)
    return built


def read_columns(
    warehouse: Warehouse, key: PartitionKey, columns: Sequence[str]
) -> pl.DataFrame | None:
    """`warehouse.read(key, columns)` through Polars' Parquet reader (`storage.parquet.decode`:
    ~40 % less CPU for a day of bronze candles); None if there is no file. A file Polars
    cannot read is read again by `Warehouse.read`, so a damaged file fails as it always has."""
    try:
        data = warehouse.store.read_bytes(key.path)
    except FileNotFoundError:
        return None
    try:
        return decode(data, columns)
    except pl.exceptions.PolarsError:
        return warehouse.read(key, columns=columns)


def mark_unavailable(coverage: pl.DataFrame, reasons: Mapping[str, str]) -> pl.DataFrame:
    """Silver coverage with the symbols bronze records unavailable at the source (`reasons`,
    symbol -> why) recorded so too: not complete, with the same reason."""
    if coverage.is_empty() or not reasons:
        return coverage
    if "unavailable" not in coverage.columns:
        coverage = coverage.with_columns(pl.lit(None, pl.String).alias("unavailable"))
    gone = pl.col("symbol").is_in(list(reasons))
    why = pl.col("symbol").replace_strict(
        list(reasons), list(reasons.values()), default=None, return_dtype=pl.String
    )
    return coverage.with_columns(
        pl.when(gone).then(False).otherwise(pl.col("complete")).alias("complete"),
        pl.when(gone).then(None).otherwise(pl.col("gap_reason")).alias("gap_reason"),
        pl.when(gone).then(why).otherwise(pl.col("unavailable")).alias("unavailable"),
    )


def _never_degrade(
    warehouse: Warehouse,
    key: PartitionKey,
    data: pl.DataFrame,
    quarantine: pl.DataFrame,
    coverage: pl.DataFrame,
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, str]]:
    """The rebuilt rows of a closed day, except the symbols whose stored version holds a valid
    row the rebuild lacks (lost, or now quarantined), or that the rebuild lacks altogether:
    those keep their stored rows and their coverage records (the rebuild's are dropped).
    Returns (rows to write, coverage to publish, refusal per symbol)."""
    try:
        stored = warehouse.read(key)
    except (pa.ArrowException, OSError):
        return data, coverage, {}  # a damaged file is being repaired
    if stored is None or stored.is_empty():
        return data, coverage, {}
    refused = refused_symbols(stored, data, SILVER_KEYS[key.dataset], offered_quarantine=quarantine)
    if not refused:
        return data, coverage, {}
    keys = list(SILVER_KEYS[key.dataset])
    kept = keep_stored(stored.select(data.columns), data, list(refused), keys)
    if not coverage.is_empty():
        coverage = coverage.filter(~pl.col("symbol").is_in(list(refused)))
    return kept, coverage, refused


def _gap_totals(coverage: pl.DataFrame) -> tuple[int, float]:
    """(merged gaps, minutes they span) over the coverage rows, in one pass."""
    gap = pl.col("gaps").explode().struct
    seconds = (gap.field("end") - gap.field("start")).dt.total_seconds()
    gaps, spans = coverage.select(
        pl.col("gaps").list.len().sum().alias("gaps"), seconds.sum().alias("seconds")
    ).row(0)
    return int(gaps or 0), float(spans or 0) / 60.0


def build_aggregate(
    interval: Interval,
    day: Any,
    *,
    warehouse: Warehouse,
    written: Mapping[Exchange, pl.DataFrame] | None = None,
) -> SilverSummary:
    """Cross-exchange aggregate of one interval and day from every exchange's stored silver
    candles of that day (whichever exchanges the run was asked for: a run on some exchanges
    never turns the others' venues out of the aggregate).

    `written` holds exchanges' candles of that interval and day just written by the caller
    (the same rows the files hold), so they are not read back; the rest are read.
    """
    from tasks.transform.aggregate import aggregate_ohlcv

    written = written or {}
    frames = []
    for exchange in Exchange:
        if exchange in written:
            if not written[exchange].is_empty():
                frames.append(written[exchange])
            continue
        frame = warehouse.read(
            PartitionKey.of(
                PartitionSpec(exchange=exchange, dataset=Dataset.OHLCV, interval=interval, day=day),
                Layer.SILVER,
            )
        )
        if frame is not None and not frame.is_empty():
            frames.append(frame)
    summary = SilverSummary(partition=f"aggregated/ohlcv/{interval.value}/{day}")
    if not frames:
        return summary
    aggregated, excluded = aggregate_ohlcv(pl.concat(frames, how="vertical_relaxed"))
    closed = is_closed(day)
    result = warehouse.write(
        PartitionKey.aggregate(interval, day), aggregated, closed=closed, force=True
    )
    summary.rows = result.rows
    summary.path = result.path
    summary.counts = {"excluded_venues": excluded.height}
    return summary
