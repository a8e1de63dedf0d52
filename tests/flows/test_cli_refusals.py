"""Bad input is refused before any request, naming the culprit, with no traceback."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from flows.cli import main
from models.dates import utc_today

TOMORROW = (utc_today() + timedelta(days=1)).isoformat()


@pytest.mark.parametrize(
    ("argv", "culprit"),
    [
        (["backfill", "--start", "2024-03-02", "--end", "2024-03-01"], "reversed"),
        (["backfill", "--start", "2024-02-30", "--end", "2024-03-01"], "2024-02-30"),
        (["backfill", "--start", "2024-03-01", "--end", TOMORROW], "future"),
        (["backfill", "--start", "yesterday", "--end", "2024-03-01"], "yesterday"),
        (
            ["backfill", "--start", "2024-03-01", "--end", "2024-03-01", "--exchanges", "kraken"],
            "kraken",
        ),
        (["backfill", "--start", "2024-03-01", "--end", "2024-03-01", "--intervals", "2h"], "2h"),
        (
            ["backfill", "--start", "2024-03-01", "--end", "2024-03-01", "--datasets", "trades"],
            "trades",
        ),
        (
            ["backfill", "--start", "2024-03-01", "--end", "2024-03-01", "--symbols", "../../etc"],
            "../../etc",
        ),
        (
            [
                "backfill",
                "--start",
                "2024-03-01",
                "--end",
                "2024-03-01",
                "--symbols",
                "BTC\x00USDT",
            ],
            "BTC",
        ),
        (
            ["backfill", "--start", "2024-03-01", "--end", "2024-03-01", "--symbols", "A" * 300],
            "longer than",
        ),
        (["run", "--date", TOMORROW], "future"),
        (["publish", "--repo-id", "not a repo"], "not a repo"),
        (["coverage", "--exchange", "ftx"], "ftx"),
    ],
)
def test_refused_with_named_culprit(
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
    assert code == 2
    assert culprit in err
    assert "Traceback" not in err
    assert not (tmp_path / "wh").exists()


def test_bad_warehouse_setting_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CRYPTO_PIPELINE_WAREHOUSE", "ftp://example/warehouse")
    code = main(["backfill", "--start", "2024-03-01", "--end", "2024-03-01"])
    err = capsys.readouterr().err
    assert code == 2 and "WAREHOUSE" in err and "ftp://" in err


def test_console_script_exits_non_zero_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "backfill",
            "--start",
            "2024-13-01",
            "--end",
            "2024-03-01",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "CRYPTO_PIPELINE_WAREHOUSE": str(tmp_path / "wh"),
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        },
    )
    assert proc.returncode == 2
    assert "2024-13-01" in proc.stderr
    assert "Traceback" not in proc.stderr
