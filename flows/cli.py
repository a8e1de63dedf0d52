"""`crypto-pipeline`: the command line over the flows (design.md §5)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from rich.console import Console

from models.dates import parse_date, utc_today
from models.errors import InputError

if TYPE_CHECKING:
    from models.settings import Settings

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exchanges", help="comma-separated: binance,coinbase,okx")
    parser.add_argument("--symbols", help="comma-separated unified symbols, e.g. BTCUSDT,ETHUSDT")
    parser.add_argument("--intervals", help="comma-separated: 1m,5m,15m,1h,4h,1d")
    parser.add_argument(
        "--datasets", help="comma-separated: ohlcv,funding,open_interest,instruments"
    )
    parser.add_argument("--force", action="store_true", help="re-fetch complete closed days")
    parser.add_argument("--sandbox", metavar="URL", help="use the sandbox exchange at URL")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crypto-pipeline",
        description="Crypto market data ETL: exchanges -> bronze -> silver -> published dataset.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("demo", help="run the main job on embedded defaults (sandbox, local folders)")

    backfill = sub.add_parser("backfill", help="backfill an inclusive UTC date range")
    backfill.add_argument("--start", required=True, help="first UTC day, YYYY-MM-DD")
    backfill.add_argument("--end", required=True, help="last UTC day, YYYY-MM-DD")
    _add_selection(backfill)

    run = sub.add_parser("run", help="the daily flow for one UTC date (default yesterday)")
    run.add_argument("--date", help="UTC day, YYYY-MM-DD (default: yesterday)")
    run.add_argument("--no-publish", action="store_true", help="skip the gold publish")
    run.add_argument("--sandbox", metavar="URL", help="use the sandbox exchange at URL")

    publish = sub.add_parser("publish", help="publish the dataset to the Hub or a local folder")
    publish.add_argument("--repo-id", help="ORG/NAME of a Hugging Face dataset repo")
    publish.add_argument("--local-dir", help="write the dataset layout to this folder")
    publish.add_argument("--dry-run", action="store_true", help="show the diff, change nothing")
    publish.add_argument(
        "--allow-shrink",
        action="store_true",
        help="publish even if a config would have fewer files or rows than the published dataset",
    )

    coverage = sub.add_parser("coverage", help="expected vs present rows, gaps, quarantined rows")
    coverage.add_argument("--dataset", help="ohlcv, funding, open_interest or instruments")
    coverage.add_argument("--exchange", help="binance, coinbase or okx")
    coverage.add_argument("--symbol", help="unified symbol, e.g. BTCUSDT")
    coverage.add_argument("--layer", default="silver", choices=["bronze", "silver"])

    sandbox = sub.add_parser("sandbox", help="serve the offline sandbox exchange")
    from sandbox import add_sandbox_arguments

    add_sandbox_arguments(sandbox)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment and `.env`, with this command's options applied."""
    from models.settings import load_settings

    url = getattr(args, "sandbox", None)
    return load_settings(**({"sandbox_url": url} if url else {}))


def _finish(state: Any, label: str) -> int:
    """Print the end summary of a flow run and return the process exit code
    (2 when the run refused its input, as for input refused before it started)."""
    if state.is_completed():
        console.print(f"[green]{label} completed[/green]")
        return 0
    error = asyncio.run(state.aresult(raise_on_failure=False))
    if isinstance(error, InputError):
        console.print(f"[red]error:[/red] {error}")
        return 2
    console.print(f"[red]{label} failed:[/red] {state.message}")
    return 1


class _ExpectedFailuresWithoutTraceback(logging.Filter):
    """Prefect logs a failed run's exception with its traceback. For the pipeline's own errors
    (refused input, named partition failures, a refused publish) the message says everything
    the user needs, so the traceback is dropped; unexpected errors keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], _expected_errors()):
            record.exc_info = None
            record.exc_text = None
        return True


def _expected_errors() -> tuple[type[BaseException], ...]:
    from tasks.bronze import DayFetchFailed, PartitionFetchFailed
    from tasks.publish import PublishError
    from tasks.reports import PipelineFailed

    return (InputError, PipelineFailed, PartitionFetchFailed, DayFetchFailed, PublishError)


def cmd_backfill(args: argparse.Namespace) -> int:
    from flows.backfill import backfill_flow
    from flows.entry import using_settings
    from flows.runner import run_with_progress
    from models.selection import Selection

    settings = _settings(args)
    selection = Selection.parse(
        start=args.start,
        end=args.end,
        exchanges=args.exchanges,
        symbols=args.symbols,
        intervals=args.intervals,
        datasets=args.datasets,
        force=args.force,
    )
    with using_settings(settings):
        state = run_with_progress(
            lambda: backfill_flow(selection=selection, return_state=True),
            title=f"backfill {selection.start}..{selection.end}",
        )
    return _finish(state, "backfill")


def cmd_run(args: argparse.Namespace) -> int:
    from flows.daily import daily_flow
    from flows.entry import using_settings
    from flows.runner import run_with_progress

    settings = _settings(args)
    day = parse_date(args.date, name="--date") if args.date else utc_today() - timedelta(days=1)
    if day > utc_today():
        raise InputError(f"--date {day} is in the future (today is {utc_today()} UTC)")
    with using_settings(settings):
        state = run_with_progress(
            lambda: daily_flow(day=day, publish=not args.no_publish, return_state=True),
            title=f"daily {day}",
        )
    return _finish(state, "daily run")


def cmd_publish(args: argparse.Namespace) -> int:
    from flows.entry import using_settings
    from flows.gold import gold_flow
    from flows.runner import run_with_progress
    from models.settings import validate_repo_id

    settings = _settings(args)
    if args.repo_id:
        validate_repo_id(args.repo_id)
    with using_settings(settings):
        state = run_with_progress(
            lambda: gold_flow(
                repo_id=args.repo_id,
                local_dir=args.local_dir,
                dry_run=args.dry_run,
                allow_shrink=args.allow_shrink,
                return_state=True,
            ),
            title="publish",
        )
    code = _finish(state, "publish")
    if code == 0:
        report = asyncio.run(state.aresult())
        out.print(report.line())
        for line in report.shrunk:
            out.print(f"shrunk on purpose: {line}")
        if report.commit_url:
            out.print(f"commit: {report.commit_url}")
    return code


def cmd_coverage(args: argparse.Namespace) -> int:
    from flows.report import print_coverage

    return print_coverage(
        _settings(args),
        dataset=args.dataset,
        exchange=args.exchange,
        symbol=args.symbol,
        layer=args.layer,
        console=out if out.is_terminal else Console(soft_wrap=True, width=160),
    )


def cmd_sandbox(args: argparse.Namespace) -> int:
    from sandbox import config_from_args, serve

    config = config_from_args(args)
    out.print(f"sandbox exchange on http://{args.host}:{args.port} (Ctrl-C to stop)")
    serve(args.host, args.port, config)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from flows.demo import run_demo

    return run_demo(_settings(args), console=out)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "backfill": cmd_backfill,
    "run": cmd_run,
    "publish": cmd_publish,
    "coverage": cmd_coverage,
    "sandbox": cmd_sandbox,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    # Progress bars and end summaries replace Prefect's per-task INFO lines on a terminal.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).addFilter(_ExpectedFailuresWithoutTraceback())
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except InputError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
