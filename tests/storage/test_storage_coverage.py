"""Coverage index: latest-wins upserts, queries, missing days, concurrency, scale."""

from __future__ import annotations

import itertools
import multiprocessing
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.coverage import COVERAGE_KEY, COVERAGE_SCHEMA
from models.dates import DateRange
from models.enums import Layer
from storage import Warehouse, merge_days, summarize
from storage import coverage as coverage_module
from storage.coverage import CoverageIndex, latest, normalize, overlay
from storage.fs import Store
from storage.parquet import encode
from storage.planning import missing_days, missing_intervals
from tests.storage import coverage_worker

T0 = datetime(2024, 6, 1, tzinfo=UTC)
DAY = date(2024, 1, 1)


def rec(
    symbol: str = "BTCUSDT",
    day: date = DAY,
    *,
    updated: int = 0,
    complete: bool = True,
    rows: int = 1440,
    exchange: str = "binance",
    interval: str | None = "1m",
    dataset: str = "ohlcv",
    gaps: list[tuple[int, int]] | None = None,
    quarantined: int = 0,
) -> dict[str, Any]:
    """A coverage record; `gaps` as (start, end) minute offsets into the day."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return {
        "layer": "silver",
        "dataset": dataset,
        "exchange": exchange,
        "symbol": symbol,
        "interval": interval,
        "day": day,
        "rows_present": rows,
        "rows_expected": None if interval is None else 1440,
        "gaps": [
            {"start": start + timedelta(minutes=a), "end": start + timedelta(minutes=b)}
            for a, b in gaps or []
        ],
        "quarantined": quarantined,
        "closed": complete,
        "complete": complete,
        "updated_at": T0 + timedelta(seconds=updated),
    }


def frame(*records: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(list(records), schema=COVERAGE_SCHEMA)


def test_upsert_and_query_filters(warehouse: Warehouse) -> None:
    index = warehouse.coverage
    assert index.query().is_empty() and index.query().schema == COVERAGE_SCHEMA
    index.upsert(
        frame(
            rec("BTCUSDT", DAY),
            rec("ETHUSDT", DAY + timedelta(days=1)),
            rec("BTCUSDT", DAY, exchange="okx"),
            rec("BTCUSDT", DAY, dataset="funding", interval=None),
        )
    )
    assert index.query().height == 4
    assert index.query(exchange="okx").height == 1
    assert index.query(dataset="funding").get_column("interval").to_list() == [None]
    assert index.query(interval="1m", symbol="BTCUSDT").height == 2
    assert index.query(layer=Layer.SILVER, start=DAY + timedelta(days=1)).height == 1
    assert index.query(end=DAY).height == 3
    assert index.query(layer="bronze").is_empty()


def test_latest_updated_at_wins_whatever_the_write_order(warehouse: Warehouse) -> None:
    index = warehouse.coverage
    index.upsert(frame(rec(updated=10, rows=100), rec("ETHUSDT", updated=10, rows=100)))
    index.upsert(frame(rec(updated=5, rows=1), rec("ETHUSDT", updated=20, rows=200)))
    got = dict(index.query().select("symbol", "rows_present").iter_rows())
    assert got == {"BTCUSDT": 100, "ETHUSDT": 200}
    index.upsert(frame(rec(updated=10, rows=300)))  # a tie goes to the later write
    assert index.query(symbol="BTCUSDT").get_column("rows_present").to_list() == [300]
    index.compact()
    fresh = Warehouse(warehouse.uri).coverage
    assert dict(fresh.query().select("symbol", "rows_present").iter_rows()) == {
        "BTCUSDT": 300,
        "ETHUSDT": 200,
    }


def test_null_interval_is_a_key_value(warehouse: Warehouse) -> None:
    index = warehouse.coverage
    index.upsert(frame(rec(dataset="funding", interval=None, updated=1, rows=3)))
    index.upsert(frame(rec(dataset="funding", interval=None, updated=2, rows=2)))
    assert index.query(dataset="funding").get_column("rows_present").to_list() == [2]


def test_compaction_keeps_every_record_in_one_file(warehouse: Warehouse) -> None:
    index = warehouse.coverage
    for i in range(5):
        index.upsert(frame(rec(day=DAY + timedelta(days=i), updated=i)))
    before = index.query()
    assert len(index.files()) == 5
    index.compact()
    assert len(index.files()) == 1 and index.files()[0].startswith("_coverage/snapshots/")
    assert Warehouse(warehouse.uri).coverage.query().equals(before)


def test_upserts_compact_automatically(warehouse: Warehouse) -> None:
    index = warehouse.coverage
    index.compact_every = 3
    for i in range(10):
        index.upsert(frame(rec(day=DAY + timedelta(days=i))))
        assert len(index.files()) <= 4
    assert index.query().height == 10


def test_missing_days_and_intervals(warehouse: Warehouse) -> None:
    index = warehouse.coverage
    days = [DAY + timedelta(days=i) for i in range(10)]
    records = [rec("BTCUSDT", d) for d in days]
    records += [rec("ETHUSDT", d) for d in days if d not in (days[3], days[4], days[8])]
    records.append(rec("ETHUSDT", days[8], complete=False))
    records += [rec("BTCUSDT", d, exchange="okx") for d in days]
    index.upsert(frame(*records))
    window = DateRange(start=DAY, end=days[-1] + timedelta(days=2))
    args: dict[str, Any] = {
        "layer": Layer.SILVER,
        "dataset": "ohlcv",
        "exchange": "binance",
        "interval": "1m",
        "days": window,
    }
    assert missing_days(warehouse, symbols=["BTCUSDT"], **args) == list(window.days())[10:]
    expected = [days[3], days[4], days[8], *list(window.days())[10:]]
    assert missing_days(warehouse, symbols=["BTCUSDT", "ETHUSDT"], **args) == expected
    assert missing_intervals(warehouse, symbols=["BTCUSDT", "ETHUSDT"], **args) == [
        (days[3], days[4]),
        (days[8], days[8]),
        (days[9] + timedelta(days=1), days[9] + timedelta(days=2)),
    ]
    assert missing_days(warehouse, symbols=["BTCUSDT"], **{**args, "interval": "5m"}) == list(
        window.days()
    )


def test_missing_days_for_a_dataset_without_interval(warehouse: Warehouse) -> None:
    index = warehouse.coverage
    index.upsert(
        frame(
            rec(dataset="funding", interval=None), rec(dataset="ohlcv", day=DAY + timedelta(days=1))
        )
    )
    got = missing_days(
        warehouse,
        layer="silver",
        dataset="funding",
        exchange="binance",
        interval=None,
        symbols=["BTCUSDT"],
        days=DateRange(start=DAY, end=DAY + timedelta(days=1)),
    )
    assert got == [DAY + timedelta(days=1)]


@given(st.sets(st.dates(date(2020, 1, 1), date(2020, 3, 31)), max_size=60))
def test_merge_days_covers_exactly_the_input(days: set[date]) -> None:
    ranges = merge_days(days)
    covered = {s + timedelta(days=i) for s, e in ranges for i in range((e - s).days + 1)}
    assert covered == days
    for (_, end), (start, _) in itertools.pairwise(ranges):
        assert (start - end).days >= 2  # disjoint, ordered, never adjacent
    assert all(s <= e for s, e in ranges)


def test_summarize() -> None:
    records = frame(
        rec("BTCUSDT", DAY, rows=1430, gaps=[(0, 5), (60, 65)], quarantined=2),
        rec("BTCUSDT", DAY + timedelta(days=1), complete=False, rows=700),
        rec("ETHUSDT", DAY),
        rec("ETHUSDT", DAY, dataset="instruments", interval=None, rows=5),
    )
    out = summarize(records)
    btc = out.filter(pl.col("symbol") == "BTCUSDT").row(0, named=True)
    assert btc["days"] == 2 and btc["complete_days"] == 1
    assert (btc["rows_present"], btc["rows_expected"]) == (2130, 2880)
    assert (btc["gap_count"], btc["gap_minutes"], btc["quarantined"]) == (2, 10, 2)
    assert (btc["first_day"], btc["last_day"]) == (DAY, DAY + timedelta(days=1))
    instruments = out.filter(pl.col("dataset") == "instruments").row(0, named=True)
    assert instruments["rows_expected"] is None and instruments["gap_minutes"] == 0


def test_records_must_be_complete() -> None:
    with pytest.raises(ValueError, match=r"lack columns \['updated_at'\]"):
        normalize(frame(rec()).drop("updated_at"))
    with pytest.raises(ValueError, match="null 'symbol'"):
        normalize(frame(rec()).with_columns(symbol=pl.lit(None, pl.String)))


def test_two_processes_writing_at_once_lose_nothing(warehouse_uri: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    workers = [
        ctx.Process(target=coverage_worker.run, args=(warehouse_uri, w, 4, 3, barrier))
        for w in (1, 2)
    ]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=60)
    assert [p.exitcode for p in workers] == [0, 0]
    got = {
        (r["symbol"], (r["day"] - coverage_worker.BASE_DAY).days): r["rows_present"]
        for r in Warehouse(warehouse_uri).coverage.query().iter_rows(named=True)
    }
    expected: dict[tuple[str, int], int] = {}
    for worker in (1, 2):
        for s, d in coverage_worker.worker_keys(worker):
            r = coverage_worker.record(s, d, worker)
            current = expected.get((s, d))
            if (
                current is None
                or coverage_worker.record(s, d, current)["updated_at"] < r["updated_at"]
            ):
                expected[(s, d)] = worker
    assert len(expected) == 100  # 60 keys each, 20 shared
    assert got == expected
    assert {w for (s, _), w in got.items() if s == "ETHUSDT"} == {1, 2}


def years_of_records() -> pl.DataFrame:
    """3 exchanges x 6 intervals x 8 symbols x 5 years of daily records (~263k)."""
    days = pl.date_range(date(2019, 1, 1), date(2023, 12, 31), eager=True).alias("day")
    grid = (
        pl.DataFrame({"exchange": ["binance", "coinbase", "okx"]})
        .join(pl.DataFrame({"interval": ["1m", "5m", "15m", "1h", "4h", "1d"]}), how="cross")
        .join(pl.DataFrame({"symbol": [f"S{i}USDT" for i in range(8)]}), how="cross")
        .join(days.to_frame(), how="cross")
    )
    return grid.with_columns(
        layer=pl.lit("silver"),
        dataset=pl.lit("ohlcv"),
        rows_present=pl.lit(1440, pl.Int64),
        rows_expected=pl.lit(1440, pl.Int64),
        gaps=pl.lit([], COVERAGE_SCHEMA["gaps"]),
        quarantined=pl.lit(0, pl.Int64),
        closed=pl.lit(True),
        complete=pl.lit(True),
        updated_at=pl.lit(T0, COVERAGE_SCHEMA["updated_at"]),
        file_stamp=pl.lit(None, pl.String()),
        gap_reason=pl.lit(None, pl.String()),
        unavailable=pl.lit(None, pl.String()),
    ).select(list(COVERAGE_SCHEMA))


def test_years_of_history_query_without_opening_partition_files(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = years_of_records()
    assert records.height > 260_000
    warehouse.coverage.upsert(records)
    warehouse.coverage.compact()
    warehouse.coverage.upsert(frame(rec("S0USDT", date(2023, 12, 31), updated=99, rows=7)))
    opened: list[str] = []
    real_read = Store.read_bytes

    def counting_read(self: Store, rel: str) -> bytes:
        opened.append(rel)
        return real_read(self, rel)

    monkeypatch.setattr(Store, "read_bytes", counting_read)
    monkeypatch.setattr(Store, "open_input", lambda self, rel: pytest.fail(f"opened {rel}"))
    monkeypatch.setattr(coverage_module, "_CACHES", {})  # cold: nothing cached in the process
    index = CoverageIndex(warehouse.store)
    started = time.perf_counter()
    got = index.query(exchange="binance", symbol="S0USDT", interval="1m", start=date(2023, 12, 1))
    cold = time.perf_counter() - started
    assert got.height == 31 and got.get_column("rows_present").to_list()[-1] == 7
    assert len(opened) == 2  # one snapshot + one fragment, not one file per partition
    assert all(name.startswith("_coverage/") for name in opened)
    started = time.perf_counter()
    missing = missing_days(
        warehouse,
        layer="silver",
        dataset="ohlcv",
        exchange="okx",
        interval="4h",
        symbols=[f"S{i}USDT" for i in range(8)],
        days=DateRange(start=date(2019, 1, 1), end=date(2024, 1, 2)),
    )
    warm = time.perf_counter() - started
    assert missing == [date(2024, 1, 1), date(2024, 1, 2)]
    assert len(opened) == 2  # immutable files are cached between queries
    print(f"coverage query over {records.height} records: cold {cold:.3f}s, warm {warm:.3f}s")


def test_latest_is_pure_and_deterministic() -> None:
    rows = frame(rec(updated=1, rows=1), rec(updated=3, rows=3), rec(updated=2, rows=2))
    assert latest(rows).get_column("rows_present").to_list() == [3]
    assert latest(rows.reverse()).get_column("rows_present").to_list() == [3]
    assert latest(rows).select(COVERAGE_KEY).is_duplicated().sum() == 0


@given(
    st.lists(
        st.tuples(st.sampled_from(["A", "B"]), st.integers(0, 3), st.integers(0, 5)), max_size=12
    ),
    st.lists(
        st.tuples(st.sampled_from(["A", "B"]), st.integers(0, 3), st.integers(0, 5)), max_size=6
    ),
)
def test_overlay_equals_a_full_merge(
    base: list[tuple[str, int, int]], newer: list[tuple[str, int, int]]
) -> None:
    def build(items: list[tuple[str, int, int]], tag: int) -> pl.DataFrame:
        return frame(
            *(
                rec(symbol, DAY + timedelta(days=d), updated=u, rows=tag * 100 + i)
                for i, (symbol, d, u) in enumerate(items)
            )
        )

    snapshot = latest(build(base, 1))
    fragments = build(newer, 2)
    order = list(COVERAGE_KEY)
    assert (
        overlay(snapshot, fragments)
        .sort(order)
        .equals(latest(pl.concat([snapshot, fragments])).sort(order))
    )


def test_records_written_before_file_stamps_read_back_with_a_null_stamp(
    warehouse: Warehouse,
) -> None:
    old = frame(rec("BTCUSDT", date(2024, 1, 1))).drop("file_stamp")
    warehouse.store.put_bytes(
        "_coverage/fragments/00000000000000000001-old.parquet", encode(old.to_arrow())
    )
    records = warehouse.coverage.records()
    assert records.schema == COVERAGE_SCHEMA
    assert records.get_column("file_stamp").to_list() == [None]
    warehouse.coverage.upsert(frame(rec("ETHUSDT", date(2024, 1, 1))))
    assert warehouse.coverage.records().height == 2


def test_cached_merge_extended_with_new_fragments_equals_a_fresh_read(
    warehouse: Warehouse,
) -> None:
    """Fragments published after a query are overlaid on the cached merge; a fragment named
    before those already merged (another writer's clock) forces a full merge instead."""
    index = warehouse.coverage
    index.upsert(frame(rec("BTCUSDT", DAY, updated=1), rec("ETHUSDT", DAY, updated=1)))
    index.compact()
    index.upsert(frame(rec("BTCUSDT", DAY, updated=2, rows=10)))
    index.query()  # cached: snapshot + one fragment
    index.upsert(frame(rec("BTCUSDT", DAY, updated=3, rows=20), rec("SOLUSDT", DAY, updated=3)))
    index.upsert(frame(rec("ETHUSDT", DAY, updated=2, complete=False)))
    late = frame(rec("SOLUSDT", DAY, updated=3, rows=5))  # ties with a later-named fragment
    incremental = index.query()

    def fresh() -> pl.DataFrame:
        coverage_module._CACHES.clear()
        return CoverageIndex(warehouse.store).query()

    assert incremental.equals(fresh())
    by_symbol = {r["symbol"]: r for r in incremental.iter_rows(named=True)}
    assert by_symbol["BTCUSDT"]["rows_present"] == 20
    assert by_symbol["ETHUSDT"]["complete"] is False

    index = warehouse.coverage  # warm again, then a fragment named before the ones merged
    index.query()
    early = "_coverage/fragments/00000000000000000001-early.parquet"
    warehouse.store.put_bytes(early, encode(late.to_arrow()))
    assert index.query().equals(fresh())
    # equal updated_at: the later file wins, whatever order the files were seen in
    assert index.query().filter(pl.col("symbol") == "SOLUSDT")["rows_present"].to_list() == [1440]


class _CompactingElsewhere(Store):
    """A store on which, before each of the first `times` reads, another process (an index
    with its own cache) publishes a record and compacts: every listed file is gone by the time
    the reader opens it."""

    def __init__(self, store: Store, other: CoverageIndex, times: int) -> None:
        super().__init__(store.location)
        self.other, self.left, self.races = other, times, 0

    def read_bytes(self, rel: str) -> bytes:
        if self.left > 0:
            self.left -= 1
            self.races += 1
            self.other.upsert(frame(rec("SOLUSDT", DAY + timedelta(days=self.races))))
            self.other.compact()
        return super().read_bytes(rel)


def test_a_reader_racing_compactions_elsewhere_reads_every_record(warehouse: Warehouse) -> None:
    other = CoverageIndex(warehouse.store)
    other._cache = coverage_module._FileCache()  # another process: nothing shared
    other.upsert(frame(rec("BTCUSDT"), rec("ETHUSDT")))
    coverage_module._CACHES.clear()
    racing = _CompactingElsewhere(warehouse.store, other, times=12)
    records = CoverageIndex(racing).query()
    assert racing.races == 12  # more consecutive races than a fixed handful of attempts
    assert records.height == 2 + 12
    assert set(records["symbol"]) == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}


class _GoneBeforeGet:
    """A filesystem whose object vanished after it was listed: Arrow then raises a plain
    `OSError` from the GET, not `FileNotFoundError`, worded as `code` says."""

    def __init__(self, code: str) -> None:
        self.code = code

    def open_input_stream(self, path: str) -> Any:
        raise OSError(
            f"When reading information for key '{path}': AWS Error {self.code} "
            "during GetObject operation: The specified key does not exist."
        )


# Both wordings seen from Arrow against an S3 endpoint (the second from a compaction racing
# two workers' chunk runs on the moto server).
@pytest.mark.parametrize("code", ["RESOURCE_NOT_FOUND", "NO_SUCH_KEY"])
def test_an_object_gone_between_listing_and_get_reads_as_not_found(
    warehouse: Warehouse, code: str
) -> None:
    store = Store(warehouse.store.location)
    store.fs = _GoneBeforeGet(code)  # type: ignore[assignment]
    with pytest.raises(FileNotFoundError, match=code):
        store.read_bytes("_coverage/fragments/x.parquet")
