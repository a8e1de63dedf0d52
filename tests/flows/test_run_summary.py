"""The CLI's end-of-run table counts every request a run made, the bulk archive's too."""

from __future__ import annotations

import io

from rich.console import Console

from flows.report import RunSummary


def rendered(summary: RunSummary) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(summary.table())
    return console.export_text()


def test_requests_row_adds_the_archive_requests() -> None:
    summary = RunSummary(
        title="backfill",
        warehouse="wh",
        requests={
            "binance": {"requests": 3, "retries": 0, "rate_limited": 0, "archive_requests": 24},
            "okx": {"requests": 10, "retries": 2, "rate_limited": 0},
        },
    )
    text = rendered(summary)
    assert "requests" in text
    assert "37: binance 27 (24 archive), okx 10 (2 retries)" in text


def test_no_requests() -> None:
    assert "requests" in rendered(RunSummary(title="backfill", warehouse="wh"))
