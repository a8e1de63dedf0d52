"""Expected failures end with the CLI's one-line errors, the right exit code and no traceback:
an unreachable exchange (within a minute, naming exchange and endpoint), SIGTERM, a full disk
while compacting the coverage index, silver days that keep failing."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any

from tests.resilience.support import (
    DATASETS,
    cli_args,
    cli_env,
    data_files,
    finish,
    start_cli,
)

FAULTY_CLI = [sys.executable, "-m", "tests.resilience.faulty_cli"]


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _assert_one_line_each(stderr: str) -> list[str]:
    lines = _error_lines(stderr)
    assert lines, stderr[-3000:]
    assert len(lines) == len(set(lines)), "an error printed twice:\n" + "\n".join(lines)
    assert "Traceback" not in stderr, stderr[-3000:]
    return lines


def test_unreachable_exchange_fails_within_a_minute(tmp_path: Path, api_url: str) -> None:
    """Injected: every exchange refuses connections; the default retry settings (client
    budget, 2 task retries). Held: the run fails within 60 s (it took 3.5 min), exit 1, one
    error line per failed partition naming the exchange and the endpoint, no traceback."""
    env = cli_env(
        tmp_path / "home",
        str(tmp_path / "wh"),
        api_url=api_url,
        extra={"CRYPTO_PIPELINE_TASK_RETRIES": "2", "CRYPTO_PIPELINE_TASK_RETRY_DELAY_S": "3"},
    )
    started = time.monotonic()
    proc = start_cli([*cli_args(), "--sandbox", "http://127.0.0.1:9"], env, tmp_path)
    done = finish(proc, timeout=120)
    wall = time.monotonic() - started
    assert done.code == 1, done.stderr[-3000:]
    assert wall < 60, f"took {wall:.0f} s to fail"
    lines = _assert_one_line_each(done.stderr)
    for exchange, endpoint in (
        ("binance", "/api/v3/"),
        ("coinbase", "/products"),
        ("okx", "/api/v5/"),
    ):
        assert any(f"({exchange} {endpoint}" in line for line in lines), lines
    assert "failures" in done.stdout  # the summary table


def test_sigterm_ends_without_traceback(tmp_path: Path, sandbox: Any, api_url: str) -> None:
    """Injected: SIGTERM while bronze is being written (slow writes). Held: exit 143, a
    one-line notice, no `TerminationSignal` traceback."""
    root = tmp_path / "wh"
    env = cli_env(
        tmp_path / "home", str(root), api_url=api_url, extra={"RESILIENCE_SLOW_FSYNC": "0.3"}
    )
    proc = start_cli([*cli_args(), "--sandbox", sandbox.url], env, tmp_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not data_files(root, "bronze", datasets=DATASETS):
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before the signal"
    proc.send_signal(signal.SIGTERM)
    done = finish(proc, timeout=60)
    assert done.code == 143, (done.code, done.stderr[-3000:])
    assert "TerminationSignal" not in done.stderr
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "terminated" in done.stderr


def _faulty(fault: str, tmp_path: Path, sandbox: Any, api_url: str) -> Any:
    import subprocess

    env = cli_env(
        tmp_path / "home", str(tmp_path / "wh"), api_url=api_url, extra={"RESILIENCE_FAULT": fault}
    )
    proc = subprocess.Popen(
        [*FAULTY_CLI, *cli_args(), "--sandbox", sandbox.url],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return finish(proc, timeout=150)


def test_full_disk_compacting_coverage_names_the_file(
    tmp_path: Path, sandbox: Any, api_url: str
) -> None:
    """Injected: ENOSPC when the bronze stage compacts the coverage index. Held: exit 1, one
    error line naming the coverage index it was writing and the reason, no bare `OSError`
    traceback."""
    done = _faulty("enospc-compact", tmp_path, sandbox, api_url)
    assert done.code == 1, done.stderr[-3000:]
    lines = _assert_one_line_each(done.stderr)
    assert any("No space left on device" in line and "_coverage" in line for line in lines), lines


def test_silver_days_failed_prints_no_traceback(tmp_path: Path, sandbox: Any, api_url: str) -> None:
    """Injected: every silver partition build raises (the silver task's days fail, are built
    again, fail again). Held: exit 1, one error line per failed partition naming it and the
    cause, no `SilverDaysFailed` traceback."""
    done = _faulty("silver-raise", tmp_path, sandbox, api_url)
    assert done.code == 1, done.stderr[-3000:]
    lines = _assert_one_line_each(done.stderr)
    assert any("injected: silver partition build broke" in line for line in lines), lines
    assert "SilverDaysFailed" not in done.stderr
