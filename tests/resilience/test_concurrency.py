"""Two backfills over overlapping ranges at once (two processes) end as one run would."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl

from tests.resilience.support import (
    END,
    START,
    assert_coverage_truthful,
    assert_readers_see_only_whole_files,
    assert_same_silver,
    cli_args,
    cli_env,
    finish,
    silver_tables,
    start_cli,
)


def test_two_overlapping_backfills_at_once(
    tmp_path: Path, sandbox: Any, api_url: str, reference: dict[str, pl.DataFrame]
) -> None:
    root = tmp_path / "warehouse"
    ranges = {"a": (START, END - timedelta(days=1)), "b": (START + timedelta(days=1), END)}

    def run(name: str) -> Any:
        first, last = ranges[name]
        env = cli_env(tmp_path / f"home-{name}", str(root), api_url=api_url)
        return finish(start_cli([*cli_args(first, last), "--sandbox", sandbox.url], env, tmp_path))

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, ranges))
    for done in results:
        assert done.code == 0, done.stderr[-3000:]
    assert_readers_see_only_whole_files(root)
    assert_coverage_truthful(str(root))
    assert_same_silver(silver_tables(str(root)), reference)  # no duplicates, nothing missing
