"""A backfill killed with SIGKILL at several points, then re-run, ends as an uninterrupted run.

Kill points, each hit by watching the warehouse (no hooks in production code):
* `fetch`: the first bronze candle/funding file has appeared (bronze in progress);
* `silver`: the first silver file has appeared (bronze done, silver starting);
* `write`: a temp file is in flight in `.staging` (writes slowed by the test's CLI wrapper).
After each kill, readers see only whole files and the coverage index claims nothing that is not
stored; after the re-run, silver equals the uninterrupted reference.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl

from models.enums import Layer
from storage import Warehouse
from tests.resilience.support import (
    DATASETS,
    assert_coverage_truthful,
    assert_readers_see_only_whole_files,
    assert_same_silver,
    cli_args,
    cli_env,
    data_files,
    finish,
    kill_when,
    silver_tables,
    staged_temps,
    start_cli,
)


def _points(root: Path) -> dict[str, tuple[Callable[[], bool], dict[str, str]]]:
    return {
        "fetch": (lambda: bool(data_files(root / "fetch", "bronze", datasets=DATASETS)), {}),
        "silver": (lambda: bool(data_files(root / "silver", "silver")), {}),
        "write": (
            lambda: (
                bool(data_files(root / "write", "bronze", datasets=DATASETS))
                and bool(staged_temps(root / "write"))
            ),
            {"RESILIENCE_SLOW_FSYNC": "0.3"},
        ),
    }


def test_sigkill_then_rerun_ends_identical(
    tmp_path: Path, sandbox: Any, api_url: str, reference: dict[str, pl.DataFrame]
) -> None:
    points = _points(tmp_path)
    args = [*cli_args(), "--sandbox", sandbox.url]

    def crash(name: str) -> tuple[str, bool, list[Path]]:
        condition, extra = points[name]
        root = tmp_path / name
        env = cli_env(tmp_path / f"home-{name}", str(root), api_url=api_url, extra=extra)
        proc = start_cli(args, env, tmp_path)
        killed = kill_when(proc, condition)
        return name, killed, staged_temps(root)

    with ThreadPoolExecutor(len(points)) as pool:
        crashes = list(pool.map(crash, points))

    for name, killed, temps in crashes:
        root = tmp_path / name
        assert killed, f"{name}: the run ended before the kill point"
        if name == "write":
            assert temps, "the kill did not land during a write"
        assert_readers_see_only_whole_files(root)
        assert_coverage_truthful(str(root))
        if name == "fetch":  # killed before silver: nothing of it claimed
            assert not data_files(root, "silver")
        if name == "silver":  # bronze was complete: the coverage check above had work to do
            records = Warehouse(str(root)).coverage.query(layer=Layer.BRONZE)
            assert records.filter(pl.col("complete")).height > 0

    def rerun(name: str) -> tuple[str, Any]:
        env = cli_env(tmp_path / f"home-{name}-2", str(tmp_path / name), api_url=api_url)
        return name, finish(start_cli(args, env, tmp_path))

    with ThreadPoolExecutor(len(points)) as pool:
        reruns = list(pool.map(rerun, points))

    for name, done in reruns:
        root = tmp_path / name
        assert done.code == 0, f"{name}: {done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr
        assert_readers_see_only_whole_files(root)
        assert_coverage_truthful(str(root))
        assert_same_silver(silver_tables(str(root)), reference)
