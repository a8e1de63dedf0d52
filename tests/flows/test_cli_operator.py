"""The CLI as an operator meets it: --version, -v, --help, open-ended ranges, the dry-run plan,
a no-op re-run that never starts Prefect, the summary table, settings errors naming the
environment variable, and the product's log lines in the flow run's logs."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from flows.cli import backfill_range, main
from models.dates import utc_today
from models.errors import InputError

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--symbols", "BTCUSDT", "--intervals", "1h", "--datasets", "ohlcv"]


def _cli_python(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter (cold process) with the repository importable."""
    full = {
        k: v for k, v in os.environ.items() if not k.startswith(("CRYPTO_PIPELINE_", "PREFECT_"))
    }
    full.update({"PYTHONPATH": str(REPO), "COLUMNS": "200", **env})
    return subprocess.run(
        [sys.executable, "-c", code], env=full, cwd=cwd, capture_output=True, text=True, timeout=120
    )


# What a cold CLI process ran: its exit code, then whether Prefect was ever imported.
_PROBE = """
import sys
from flows.cli import main
code = main({argv!r})
print("PREFECT-IMPORTED" if "prefect" in sys.modules else "PREFECT-NOT-IMPORTED")
sys.exit(code)
"""


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """Injected: `--version`. Held: prints the package version, exits 0."""
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("crypto-pipeline ")


def test_help_has_examples_and_environment(capsys: pytest.CaptureFixture[str]) -> None:
    """Injected: `--help`. Held: it shows examples and the environment variables."""
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "examples:" in text
    assert "crypto-pipeline backfill --days 7 --dry-run" in text
    for variable in ("CRYPTO_PIPELINE_WAREHOUSE", "CRYPTO_PIPELINE_EXCHANGES", "PREFECT_API_URL"):
        assert variable in text
    assert "-v, --verbose" in text


def test_settings_error_names_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Injected: CRYPTO_PIPELINE_EXCHANGES=ftx. Held: refused (exit 2) naming the variable a
    user sets, not the settings field, with no traceback."""
    monkeypatch.setenv("CRYPTO_PIPELINE_WAREHOUSE", str(tmp_path / "wh"))
    monkeypatch.setenv("CRYPTO_PIPELINE_EXCHANGES", "ftx")
    code = main(["backfill", "--days", "1", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2
    assert "CRYPTO_PIPELINE_EXCHANGES" in err
    assert "ftx" in err
    assert "Traceback" not in err


def test_open_ended_ranges() -> None:
    """Injected: --start alone, --days N, both, none, N < 1. Held: the end defaults to
    yesterday, --days is the last N closed days, the inconsistent ones are refused by name."""
    today = date(2024, 3, 10)
    assert backfill_range("2024-03-01", None, None, today) == (date(2024, 3, 1), date(2024, 3, 9))
    assert backfill_range(None, None, 3, today) == (date(2024, 3, 7), date(2024, 3, 9))
    assert backfill_range(None, "2024-03-05", 2, today) == (date(2024, 3, 4), date(2024, 3, 5))
    with pytest.raises(InputError, match="--days"):
        backfill_range("2024-03-01", None, 3, today)
    with pytest.raises(InputError, match="--start"):
        backfill_range(None, None, None, today)
    with pytest.raises(InputError, match="--days 0"):
        backfill_range(None, None, 0, today)


def test_dry_run_prints_the_plan_without_prefect(tmp_path: Path) -> None:
    """Injected: `backfill --days 2 --dry-run` on an empty warehouse, no exchange reachable.
    Held: the plan per series with its day range for bronze and silver; nothing written;
    Prefect never imported (so no API started); exit 0."""
    warehouse = tmp_path / "wh"
    yesterday = utc_today() - timedelta(days=1)
    first = yesterday - timedelta(days=1)
    argv = ["backfill", "--days", "2", "--exchanges", "binance", *SMALL, "--dry-run"]
    done = _cli_python(
        _PROBE.format(argv=argv),
        {
            "CRYPTO_PIPELINE_WAREHOUSE": str(warehouse),
            "CRYPTO_PIPELINE_SANDBOX_URL": "http://127.0.0.1:9",
        },
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert f"binance/ohlcv/1h: {first}..{yesterday}" in done.stdout
    assert "bronze: fetch 2 partition(s)" in done.stdout
    assert "silver: build 2 partition(s)" in done.stdout
    assert "PREFECT-NOT-IMPORTED" in done.stdout
    assert not warehouse.exists()


def test_rerun_of_a_complete_range_needs_neither_prefect_nor_the_exchange(
    prefect_api: None,
    sandbox_url: str,
    warehouse_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Injected: a backfill, then the same backfill again in a cold process with the exchange
    unreachable. Held: the first prints the summary table (rows, requests, failures, where
    the data is); the re-run prints "nothing to do" with the coverage of the range, exits 0,
    never imports Prefect nor makes a request, in well under the old 8-10 s."""
    argv = ["backfill", "--start", "2024-03-01", "--end", "2024-03-02", *SMALL]
    assert main([*argv, "--sandbox", sandbox_url]) == 0
    out = capsys.readouterr().out
    for field in ("bronze", "silver", "requests", "failures", "gaps", "quarantined"):
        assert field in out
    assert str(warehouse_dir) in out

    started = time.monotonic()
    done = _cli_python(
        _PROBE.format(argv=argv),
        {
            "CRYPTO_PIPELINE_WAREHOUSE": str(warehouse_dir),
            "CRYPTO_PIPELINE_SANDBOX_URL": "http://127.0.0.1:9",
        },
        tmp_path,
    )
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "nothing to do" in done.stdout
    assert "2/2" in done.stdout  # complete days of the range, per series
    assert "PREFECT-NOT-IMPORTED" in done.stdout
    assert wall < 8, f"no-op re-run took {wall:.1f} s"


def test_client_retry_lines_reach_the_flow_runs_logs(
    prefect_api: None, warehouse_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Injected: a backfill against an exchange that refuses connections (task retries off).
    Held: the client's own `retrying (attempt N)` lines (logger `clients.base`) are in the
    flow run's logs on the Prefect API, i.e. in the UI."""
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    from flows.backfill import backfill_flow
    from models.selection import Selection

    monkeypatch.setenv("CRYPTO_PIPELINE_SANDBOX_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("CRYPTO_PIPELINE_TASK_RETRIES", "0")
    selection = Selection(
        start=date(2024, 3, 1), end=date(2024, 3, 1), exchanges=["binance"], **_small()
    )
    state = asyncio.run(backfill_flow(selection=selection, return_state=True))
    assert state.is_failed()
    run_id = state.state_details.flow_run_id

    async def messages() -> list[Any]:
        async with get_client() as client:
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id]))
            )
            return [(log.name, log.message) for log in logs]

    deadline = time.monotonic() + 20
    found: list[Any] = []
    while time.monotonic() < deadline:  # logs are sent in batches
        found = asyncio.run(messages())
        if any(name == "clients.base" and "retrying (attempt" in m for name, m in found):
            break
        time.sleep(0.5)
    assert any(name == "clients.base" and "retrying (attempt" in m for name, m in found), found


def _small() -> dict[str, Any]:
    return {"symbols": ["BTCUSDT"], "intervals": ["1h"], "datasets": ["ohlcv"]}
