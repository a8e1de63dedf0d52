"""Bad input beyond tests/flows/test_cli_refusals.py: refused naming the culprit, exit 2, no
traceback, nothing written. (Damaged warehouse files: test_corruption.py.)"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flows.cli import main
from models.dates import utc_today
from tests.resilience.support import cli_env, finish, start_cli

NEXT_WEEK = (utc_today() + timedelta(days=7)).isoformat()
DAY = ["--start", "2024-03-01", "--end", "2024-03-01"]


@pytest.mark.parametrize(
    ("argv", "culprit"),
    [
        (["backfill", "--start", "2023-02-29", "--end", "2023-03-01"], "2023-02-29"),
        (["backfill", "--start", "2024-00-10", "--end", "2024-03-01"], "2024-00-10"),
        (["backfill", "--start", NEXT_WEEK, "--end", NEXT_WEEK], "future"),
        (["backfill", *DAY, "--symbols", "BTC/USDT/EUR"], "BTC/USDT/EUR"),
        (["backfill", *DAY, "--symbols", "BTC USDT"], "BTC USDT"),
        (["backfill", *DAY, "--symbols", "BTC\nUSDT"], "BTC"),
        (["backfill", *DAY, "--symbols", "..\\..\\windows"], "windows"),
        (["backfill", *DAY, "--symbols", "$(id)USDT"], "$(id)USDT"),
        (["backfill", *DAY, "--symbols", "BTC\u0421USDT"], "BTC\u0421USDT"),  # Cyrillic Es
        (["backfill", *DAY, "--symbols", "BTC%2FUSDT"], "BTC%2FUSDT"),
        (["backfill", *DAY, "--exchanges", "binance,../okx"], "../okx"),
        (["backfill", *DAY, "--intervals", "1h;rm"], "1h;rm"),
        (["backfill", *DAY, "--datasets", "ohlcv/../../x"], "ohlcv/../../x"),
        (["publish", "--repo-id", "org/name/extra"], "org/name/extra"),
        (["publish", "--repo-id", "org/../name"], "org/../name"),
        (["coverage", "--symbol", "../../etc/passwd"], "../../etc/passwd"),
    ],
)
def test_refused_arguments(
    argv: list[str],
    culprit: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CRYPTO_PIPELINE_WAREHOUSE", str(tmp_path / "wh"))
    monkeypatch.setenv("CRYPTO_PIPELINE_SANDBOX_URL", "http://127.0.0.1:9")  # nothing listens
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert culprit in err
    assert "Traceback" not in err
    assert not (tmp_path / "wh").exists()


@pytest.mark.parametrize(
    ("variable", "value", "culprit"),
    [
        ("CRYPTO_PIPELINE_WAREHOUSE", "s3://Bad_Bucket/x", "Bad_Bucket"),
        ("CRYPTO_PIPELINE_WAREHOUSE", "s3://", "WAREHOUSE"),
        ("CRYPTO_PIPELINE_WAREHOUSE", "/tmp/wh\x07x", "control characters"),
        ("CRYPTO_PIPELINE_HF_REPO_ID", "../../evil", "../../evil"),
        ("CRYPTO_PIPELINE_SYMBOLS", "BTCUSDT,../x", "../x"),
        ("CRYPTO_PIPELINE_EXCHANGES", "binance,ftx", "ftx"),
        ("CRYPTO_PIPELINE_INTERVALS", "1h,7m", "7m"),
        ("CRYPTO_PIPELINE_TASK_RETRIES", "-1", "TASK_RETRIES"),
    ],
)
def test_refused_settings(
    variable: str,
    value: str,
    culprit: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CRYPTO_PIPELINE_WAREHOUSE", str(tmp_path / "wh"))
    monkeypatch.setenv(variable, value)
    monkeypatch.setenv("CRYPTO_PIPELINE_SANDBOX_URL", "http://127.0.0.1:9")
    code = main(["backfill", *DAY])
    err = capsys.readouterr().err
    assert code == 2, err
    assert culprit in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_symbol_no_exchange_lists_is_refused_by_name(
    tmp_path: Path, sandbox: Any, api_url: str
) -> None:
    root = tmp_path / "wh"
    env = cli_env(tmp_path / "home", str(root), api_url=api_url)
    done = finish(
        start_cli(
            ["backfill", *DAY, "--symbols", "FOOUSDT", "--sandbox", sandbox.url], env, tmp_path
        )
    )
    assert done.code == 2, done.stderr[-2000:]
    assert "FOOUSDT" in done.stderr and "not listed" in done.stderr
    assert "Traceback" not in done.stderr
    # only the exchanges' listing snapshots (needed to decide) were stored, no market data
    stored = {p.relative_to(root).parts[:2] for p in root.rglob("*.parquet")}
    assert stored <= {("bronze", "instruments")}
