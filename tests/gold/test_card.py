"""Dataset card: front matter the Hub and `datasets` read, schema and coverage sections."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml

from models.coverage import COVERAGE_SCHEMA
from tasks.publish import build_layout, render_card


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n", 2)[1])


def _coverage() -> pl.DataFrame:
    def ts(hour: int, minute: int = 0) -> datetime:
        return datetime(2024, 1, 1, hour, minute, tzinfo=UTC)

    rows = [
        ("silver", "ohlcv", "binance", "BTCUSDT", "1m", date(2024, 1, 1), 1430, 1440,
         [{"start": ts(3), "end": ts(3, 10)}], 2, True, True, ts(23), None),
        ("silver", "ohlcv", "okx", "BTCUSDT", "1m", date(2024, 1, 1), 1440, 1440, [], 0,
         True, True, ts(23), None),
        ("silver", "funding", "okx", "BTCUSDT", None, date(2024, 1, 1), 2, 3,
         [{"start": ts(8), "end": ts(16)}], 0, True, True, ts(23), None),
        ("bronze", "ohlcv", "okx", "BTCUSDT", "1m", date(2024, 1, 1), 1, 1440, [], 0,
         True, True, ts(23), None),
    ]  # fmt: skip
    return _records(rows)


def _records(rows: list[tuple]) -> pl.DataFrame:
    """Coverage records from rows ending at `file_stamp`; later optional columns are null."""
    width = list(COVERAGE_SCHEMA).index("file_stamp") + 1
    padded = [(*row, *([None] * (len(COVERAGE_SCHEMA) - width))) for row in rows]
    return pl.DataFrame(padded, schema=COVERAGE_SCHEMA, orient="row")


def test_front_matter_declares_every_config(make_silver, tmp_path: Path) -> None:
    manifest = build_layout(make_silver(2), tmp_path)
    meta = _front_matter(render_card(manifest, repo_id="tester/crypto"))
    assert meta["license"] == "other" and meta["license_name"]
    assert meta["pretty_name"]
    assert "crypto" in meta["tags"] and meta["task_categories"] == ["time-series-forecasting"]
    assert meta["size_categories"] == ["10K<n<100K"]
    configs = {c["config_name"]: c for c in meta["configs"]}
    assert list(configs) == [c.config for c in manifest.configs]
    for name, entry in configs.items():
        assert entry["data_files"] == [{"split": "train", "path": f"data/{name}/*.parquet"}]
    assert [n for n, c in configs.items() if c.get("default")] == ["ohlcv_1d"]


def test_default_falls_back_when_daily_candles_absent(make_silver, tmp_path: Path) -> None:
    manifest = build_layout({"funding": make_silver(1)["funding"]}, tmp_path)
    meta = _front_matter(render_card(manifest, repo_id=None))
    assert meta["configs"] == [
        {
            "config_name": "funding",
            "data_files": [{"split": "train", "path": "data/funding/*.parquet"}],
            "default": True,
        }
    ]


def test_body_documents_schema_licence_and_loading(make_silver, tmp_path: Path) -> None:
    manifest = build_layout(make_silver(2), tmp_path)
    card = render_card(manifest, repo_id="tester/crypto")
    assert "| `quote_volume` | float64 | yes |" in card
    assert "| `ts` | timestamp[ms, UTC] | no | funding time, UTC |" in card
    assert "| `exchanges` | list<string> | no |" in card
    assert "| `ohlcv_1m` | 25,920 | 1 |" in card
    assert "## Licence and sources" in card and "https://www.okx.com" in card
    assert 'load_dataset("tester/crypto", "ohlcv_1d", split="train")' in card
    assert "hf://datasets/tester/crypto/data/ohlcv_1d/*.parquet" in card
    assert "## Coverage" not in card
    local = render_card(manifest, repo_id=None)
    assert 'load_dataset("path/to/this/folder", "ohlcv_1d"' in local
    assert "hf://" not in local


def test_coverage_section_lists_completeness_and_gaps(make_silver, tmp_path: Path) -> None:
    manifest = build_layout(make_silver(2), tmp_path)
    card = render_card(manifest, repo_id="tester/crypto", coverage=_coverage())
    section = card.split("## Coverage", 1)[1].split("## Licence", 1)[0]
    assert "| `ohlcv_1m` | binance | 1 | 2024-01-01 | 2024-01-01 | 1 | 1,430 | 1,440 | 99.31 %" in (
        section
    )
    assert "| `funding` | okx |" in section
    okx = (
        "| `ohlcv_1m` | okx | 1 | 2024-01-01 | 2024-01-01 | 1 | 1,440 | 1,440 | 100.00 % | 0 | 0 |"
    )
    assert okx in section  # the bronze row is ignored
    gaps = section.split("Largest gaps", 1)[1]
    assert gaps.index("2024-01-01 08:00 UTC") < gaps.index("2024-01-01 03:00 UTC")


def test_card_is_deterministic(make_silver, tmp_path: Path) -> None:
    first = render_card(
        build_layout(make_silver(2), tmp_path / "a"), repo_id="t/c", coverage=_coverage()
    )
    second = render_card(
        build_layout(make_silver(2), tmp_path / "b"), repo_id="t/c", coverage=_coverage()
    )
    assert first == second


def _coverage_with_unlisted() -> pl.DataFrame:
    """Coinbase asked for BNBUSDT (it lists none: 0 rows every day), Binance for BTCUSDT."""

    def row(exchange: str, symbol: str, day: int, present: int) -> tuple:
        when = datetime(2024, 1, day, 23, tzinfo=UTC)
        gaps = [] if present else [{"start": datetime(2024, 1, day, tzinfo=UTC), "end": when}]
        return ("silver", "ohlcv", exchange, symbol, "1h", date(2024, 1, day), present, 24,
                gaps, 0, True, True, when, None)  # fmt: skip

    rows = [row("coinbase", "BNBUSDT", d, 0) for d in (1, 2)]
    rows += [row("binance", "BTCUSDT", d, 24) for d in (1, 2)]
    rows += [row("coinbase", "BTCUSDT", 1, 24), row("coinbase", "BTCUSDT", 2, 0)]
    return _records(rows)


def test_dataset_info_features_are_what_datasets_reads(make_silver, tmp_path: Path) -> None:
    """Injected: a build of every config. Held: `dataset_info` has one entry per config whose
    features, parsed by `datasets`, equal the features `datasets` derives from the Parquet files'
    own schema, and whose train split counts the config's rows."""
    datasets = pytest.importorskip("datasets")
    manifest = build_layout(make_silver(2), tmp_path)
    meta = _front_matter(render_card(manifest, repo_id="tester/crypto"))
    infos = {i["config_name"]: i for i in meta["dataset_info"]}
    assert list(infos) == [c.config for c in manifest.configs]
    for config in manifest.configs:
        info = infos[config.config]
        first = next(f for f in manifest.files if f.config == config.config)
        declared = datasets.Features._from_yaml_list(info["features"])
        actual = datasets.Features.from_arrow_schema(pq.read_schema(first.local_path))
        assert declared == actual, config.config
        assert info["splits"] == [{"name": "train", "num_examples": config.rows}]
        assert info["download_size"] == config.size


def test_licence_link_names_every_exchange_terms(make_silver, tmp_path: Path) -> None:
    """Injected: a build from Binance, Coinbase and OKX. Held: `license: other` links to
    `LICENSE.md`, a file of the build that names each exchange's terms of use."""
    manifest = build_layout(make_silver(1), tmp_path)
    meta = _front_matter(render_card(manifest, repo_id=None))
    assert (meta["license"], meta["license_name"]) == ("other", "exchange-terms")
    assert meta["license_link"] == "LICENSE.md"
    licence = manifest.by_path()["LICENSE.md"].local_path.read_text()
    for name, terms in (
        ("Binance", "https://www.binance.com/en/terms"),
        ("Coinbase Exchange", "https://www.coinbase.com/legal/user_agreement"),
        ("OKX", "https://www.okx.com/help/terms-of-service"),
    ):
        assert f"- {name}: {terms}" in licence


def test_coverage_leaves_out_symbols_an_exchange_does_not_list(make_silver, tmp_path: Path) -> None:
    """Injected: coverage where Coinbase was asked for BNBUSDT (not in its listings, no rows on
    any day) beside a listed BTCUSDT with one empty day. Held: BNBUSDT is neither counted as
    missing nor listed among the gaps, the note names it as not listed, and the listed symbol's
    empty day still counts as missing."""
    manifest = build_layout(make_silver(1), tmp_path)  # listings: BTC, ETH, SOL everywhere
    card = render_card(manifest, repo_id=None, coverage=_coverage_with_unlisted())
    section = card.split("## Coverage", 1)[1].split("## Licence", 1)[0]
    assert "| `ohlcv_1h` | coinbase | 2 | 2024-01-01 | 2024-01-02 | 1 | 24 | 48 | 50.00 %" in (
        section
    )
    assert "| `ohlcv_1h` | binance | 2 | 2024-01-01 | 2024-01-02 | 1 | 48 | 48 | 100.00 %" in (
        section
    )
    assert "BNBUSDT" not in section.split("Largest gaps", 1)[1]
    assert "not listed there" in section and "BNBUSDT on Coinbase Exchange (spot)" in section


def test_coverage_judged_against_explicit_listings(make_silver, tmp_path: Path) -> None:
    """Injected: listings passed by the caller that include BNBUSDT on Coinbase. Held: then its
    empty days are missing data and counted (the listing decides, not the zero rows)."""
    manifest = build_layout(make_silver(1), tmp_path)
    listings = pl.DataFrame(
        {
            "exchange": ["coinbase", "coinbase", "binance"],
            "symbol": ["BNBUSDT", "BTCUSDT", "BTCUSDT"],
            "kind": ["spot", "spot", "spot"],
        }
    )
    card = render_card(
        manifest, repo_id=None, coverage=_coverage_with_unlisted(), listings=listings
    )
    section = card.split("## Coverage", 1)[1].split("## Licence", 1)[0]
    assert "| `ohlcv_1h` | coinbase | 2 | 2024-01-01 | 2024-01-02 | 2 | 24 | 96 | 25.00 %" in (
        section
    )
    assert "every requested symbol was listed" in section


# --------------------------------------------------------------------------- unavailable


def _states_warehouse(tmp_path: Path):
    """A warehouse whose silver coverage records OKX open interest beyond the source's depth
    before 2024-10-02 and a Binance symbol before its listing, plus complete days."""
    from datetime import timedelta

    from storage import Warehouse

    depth = "beyond the source's depth (1,440 h)"
    stamp = datetime(2024, 10, 5, tzinfo=UTC)
    rows = []
    for n in range(5):  # 2024-09-29 .. 2024-10-03
        day = date(2024, 9, 29) + timedelta(days=n)
        served = day >= date(2024, 10, 2)
        rows.append(
            (
                "silver",
                "open_interest",
                "okx",
                "BTCUSDT",
                "1h",
                day,
                24 if served else 0,
                24,
                [],
                0,
                True,
                served,
                stamp,
                None,
                None,
                None if served else depth,
            )
        )
        listed = day >= date(2024, 10, 1)
        for interval in ("1m", "1h"):
            per_day = 1440 if interval == "1m" else 24
            rows.append(
                (
                    "silver",
                    "ohlcv",
                    "binance",
                    "ENAUSDT",
                    interval,
                    day,
                    per_day if listed else 0,
                    per_day,
                    [],
                    0,
                    True,
                    listed,
                    stamp,
                    None,
                    None,
                    None if listed else "before the listing (2024-10-01)",
                )
            )
        rows.append(  # served every day: no line
            (
                "silver",
                "ohlcv",
                "binance",
                "BTCUSDT",
                "1m",
                day,
                1440,
                1440,
                [],
                0,
                True,
                True,
                stamp,
                None,
                None,
                None,
            )
        )
    warehouse = Warehouse(str(tmp_path / "warehouse"))
    warehouse.coverage.upsert(pl.DataFrame(rows, schema=COVERAGE_SCHEMA, orient="row"))
    return warehouse


def test_card_lists_days_unavailable_at_the_source(make_silver, tmp_path: Path) -> None:
    from models.enums import Layer
    from storage.planning import describe_states, source_states

    warehouse = _states_warehouse(tmp_path)
    states = source_states(warehouse, layer=Layer.SILVER)  # what `coverage` reads
    manifest = build_layout(make_silver(2), tmp_path / "layout")
    card = render_card(
        manifest,
        repo_id="tester/crypto",
        coverage=warehouse.coverage.query(layer=Layer.SILVER),
        states=states,
    )
    section = card.split("## Unavailable at the source", 1)[1].split("## Licence", 1)[0]
    okx = (
        "| OKX | open interest 1h | BTCUSDT | from 2024-10-02 | 3 | beyond the source's depth "
        "(1,440 h): 2024-09-29..2024-10-01 |"
    )
    assert okx in section
    ena = (
        "| Binance | candles 1m, 1h | ENAUSDT | from 2024-10-01 | 2 | before the listing "
        "(2024-10-01): 2024-09-29..2024-09-30 |"
    )
    assert ena in section
    assert "BTCUSDT | from 2024-09-29" not in section  # Binance BTCUSDT lost no day
    # the same facts `crypto-pipeline coverage` prints
    lines = describe_states(states)
    assert any(
        ln.startswith(
            "okx open_interest 1h BTCUSDT: from 2024-10-02; 2 complete, 0 missing, 3 "
            "unavailable (beyond the source's depth (1,440 h): 2024-09-29..2024-10-01)"
        )
        for ln in lines
    ), lines
    assert card == render_card(
        manifest,
        repo_id="tester/crypto",
        coverage=warehouse.coverage.query(layer=Layer.SILVER),
        states=states,
    )  # deterministic


def test_card_says_when_nothing_is_unavailable(make_silver, tmp_path: Path) -> None:
    from storage.planning import STATE_COLUMNS

    manifest = build_layout(make_silver(2), tmp_path)
    card = render_card(manifest, repo_id=None, states=pl.DataFrame(schema=STATE_COLUMNS))
    section = card.split("## Unavailable at the source", 1)[1]
    assert "Every recorded day was served by its exchange." in section
    assert "## Unavailable at the source" not in render_card(manifest, repo_id=None)
