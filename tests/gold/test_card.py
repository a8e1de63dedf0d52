"""Dataset card: front matter the Hub and `datasets` read, schema and coverage sections."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
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
    given = ("file_stamp",)  # the optional columns after it (gap_reason) are null
    width = list(COVERAGE_SCHEMA).index(given[-1]) + 1
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
