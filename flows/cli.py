"""`crypto-pipeline`: the command line over the flows (design.md §5)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from rich.console import Console

from models.dates import parse_date, utc_today
from models.enums import Dataset, Exchange, Interval
from models.errors import InputError
from models.partitions import DAILY_DATASETS

if TYPE_CHECKING:
    from flows.report import RunSummary
    from models.selection import RunRequest, Selection
    from models.settings import Settings
    from tasks.context import RunContext

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

EXAMPLES = """\
examples:
  crypto-pipeline demo
  crypto-pipeline backfill --start 2024-01-01 --end 2024-01-31 --symbols BTCUSDT,ETHUSDT
  crypto-pipeline backfill --start 2024-01-01            # up to yesterday
  crypto-pipeline backfill --days 7 --dry-run            # what the last 7 closed days need
  crypto-pipeline run                                    # yesterday: bronze, silver, publish
  crypto-pipeline coverage --dataset ohlcv --symbol BTCUSDT
  crypto-pipeline publish --local-dir ./data/dataset --dry-run
  crypto-pipeline sandbox --port 8700 &   # then --sandbox http://127.0.0.1:8700

environment (also read from .env):
  CRYPTO_PIPELINE_WAREHOUSE     warehouse: a path or s3://bucket/prefix (./data/warehouse)
  CRYPTO_PIPELINE_SANDBOX_URL   a sandbox exchange instead of the live ones (--sandbox)
  CRYPTO_PIPELINE_SYMBOLS       spot symbols (BTCUSDT,ETHUSDT,SOLUSDT,BNBUSDT,XRPUSDT)
  CRYPTO_PIPELINE_PERP_SYMBOLS  perpetuals for funding and open interest (BTCUSDT,ETHUSDT,SOLUSDT)
  CRYPTO_PIPELINE_EXCHANGES     binance,coinbase,okx
  CRYPTO_PIPELINE_INTERVALS     1m,5m,15m,1h,4h,1d
  CRYPTO_PIPELINE_PUBLISH_DIR   local dataset folder (./data/dataset)
  CRYPTO_PIPELINE_HF_REPO_ID    Hugging Face dataset repo ORG/NAME; token from HF_TOKEN
  CRYPTO_PIPELINE_ALLOWANCE     rate-limit allowance: local, local/N or redis://host:6379/0
  PREFECT_API_URL               a running Prefect server to use (else a temporary local API)

exit codes: 0 success, 1 a run failed, 2 input refused, 3 the Prefect API is unavailable,
130/143 interrupted/terminated.
"""

# Exit codes (besides 0, 1 and 2).
API_UNAVAILABLE = 3
INTERRUPTED = 130
TERMINATED = 143

# Seconds the temporary local Prefect API may take to start (Prefect's default is 20; under
# load a fresh database's migrations take longer).
EPHEMERAL_STARTUP_TIMEOUT_S = "120"


def _choices(kind: type[StrEnum]) -> str:
    return ",".join(member.value for member in kind)


def _add_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        choices=["auto", "archive", "rest"],
        help="Binance history: its public archive for closed periods and REST for the rest "
        "(auto, the default: CRYPTO_PIPELINE_BINANCE_SOURCE), or force one",
    )
    parser.add_argument(
        "--recheck-archive",
        action="store_true",
        help="Binance: re-ingest stored days whose archive file was replaced at the source "
        "(one .CHECKSUM request per stored file; source auto or archive)",
    )


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exchanges", help=f"comma-separated: {_choices(Exchange)}")
    parser.add_argument(
        "--symbols",
        help="comma-separated unified symbols, e.g. BTCUSDT,ETHUSDT, or a rule: top:N[:QUOTE] "
        "(by 24h quote volume), all:QUOTE",
    )
    parser.add_argument("--intervals", help=f"comma-separated: {_choices(Interval)}")
    parser.add_argument("--datasets", help=f"comma-separated: {_choices(Dataset)}")
    parser.add_argument("--force", action="store_true", help="re-fetch complete closed days")
    parser.add_argument("--sandbox", metavar="URL", help="use the sandbox exchange at URL")
    _add_source(parser)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crypto-pipeline")
    except PackageNotFoundError:  # a source checkout that is not installed
        return "unknown"


def build_parser(with_sandbox: bool = True) -> argparse.ArgumentParser:
    """The parser; without `with_sandbox` the `sandbox` command's options are left out (they
    import the sandbox server, a third of a no-op run's start-up)."""
    parser = argparse.ArgumentParser(
        prog="crypto-pipeline",
        description="Crypto market data ETL: exchanges -> bronze -> silver -> published dataset.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="show the run's log lines (-v: INFO, -vv: DEBUG) and tracebacks",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("demo", help="run the main job on embedded defaults (sandbox, local folders)")

    backfill = sub.add_parser(
        "backfill",
        help="backfill an inclusive UTC date range",
        description="Fetch and build an inclusive UTC date range through bronze and silver; "
        "complete closed days are skipped unless --force. Give --start (and --end, default "
        "yesterday) or --days.",
        epilog="examples:\n"
        "  crypto-pipeline backfill --start 2024-01-01 --end 2024-01-31\n"
        "  crypto-pipeline backfill --start 2024-01-01 --datasets ohlcv --intervals 1h\n"
        "  crypto-pipeline backfill --days 7 --exchanges binance --dry-run\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    backfill.add_argument("--start", help="first UTC day, YYYY-MM-DD")
    backfill.add_argument("--end", help="last UTC day, YYYY-MM-DD (default: yesterday)")
    backfill.add_argument(
        "--days", type=int, metavar="N", help="the last N closed UTC days (ending yesterday)"
    )
    backfill.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be fetched and built, per series and days; change nothing",
    )
    _add_selection(backfill)

    run = sub.add_parser(
        "run",
        help="the daily flow for one UTC date (default yesterday)",
        epilog="example:\n  crypto-pipeline run --date 2024-03-01 --no-publish\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--date", help="UTC day, YYYY-MM-DD (default: yesterday)")
    run.add_argument("--no-publish", action="store_true", help="skip the gold publish")
    run.add_argument("--sandbox", metavar="URL", help="use the sandbox exchange at URL")
    _add_source(run)

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
    coverage.add_argument("--dataset", help=" or ".join(d.value for d in Dataset))
    coverage.add_argument("--exchange", help=" or ".join(e.value for e in Exchange))
    coverage.add_argument("--symbol", help="unified symbol, e.g. BTCUSDT")
    coverage.add_argument("--layer", default="silver", choices=["bronze", "silver"])

    discard = sub.add_parser(
        "discard",
        help="remove a series' stored days on purpose (bronze, silver, quarantine)",
        description="Remove the stored files of one series for a range of days in every layer "
        "and reset their coverage, logging each file; the next backfill over those days fetches "
        "and builds them again. The one way to discard data that never-degrade would keep.",
        epilog="example:\n  crypto-pipeline discard --dataset ohlcv --exchange binance "
        "--interval 1h --start 2024-03-01 --end 2024-03-02 --reason 'exchange revised'\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    discard.add_argument("--dataset", required=True, choices=[d.value for d in DAILY_DATASETS])
    discard.add_argument("--exchange", required=True, choices=[e.value for e in Exchange])
    discard.add_argument("--interval", help="only this candle interval (ohlcv; default: all)")
    discard.add_argument("--start", required=True, help="first UTC day, YYYY-MM-DD")
    discard.add_argument("--end", required=True, help="last UTC day, YYYY-MM-DD")
    discard.add_argument("--reason", default="", help="why (logged and kept in the coverage)")

    sandbox = sub.add_parser("sandbox", help="serve the offline sandbox exchange")
    if with_sandbox:
        from sandbox import add_sandbox_arguments

        add_sandbox_arguments(sandbox)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment and `.env`, with this command's options applied."""
    from models.settings import load_settings

    overrides: dict[str, str] = {}
    if url := getattr(args, "sandbox", None):
        overrides["sandbox_url"] = url
    if source := getattr(args, "source", None):
        overrides["binance_source"] = source
    if getattr(args, "recheck_archive", False):
        overrides["binance_archive_recheck"] = "true"
    return load_settings(**overrides)


# -- logging -----------------------------------------------------------------------------------


def _configure_logging(verbose: int) -> None:
    """Prefect's loggers stay at INFO, so a run's lines reach its logs in the UI; the console
    shows warnings only (progress bars and the summary replace the INFO lines) unless `-v`.
    The product's own lines go to the UI inside runs (`flows.entry.route_product_logs`) and,
    with `-v`, to the console too."""
    level = "DEBUG" if verbose > 1 else "INFO"
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", level)
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", level if verbose else "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault(
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", EPHEMERAL_STARTUP_TIMEOUT_S
    )
    # Prefect retries a call to its API 5 times (2+4+8+16+32 s): a lost server kept the CLI
    # waiting for 140 s. Two retries still ride out a restart of a few seconds.
    os.environ.setdefault("PREFECT_CLIENT_MAX_RETRIES", "2")
    if not verbose:
        # A log handler's own failure (e.g. sending a batch of logs to an API that is gone)
        # prints a traceback; the CLI reports a lost API itself, once.
        logging.raiseExceptions = False
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        handler.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
        from flows.entry import PRODUCT_LOGGERS

        for name in PRODUCT_LOGGERS:
            logger = logging.getLogger(name)
            logger.addHandler(handler)
            logger.setLevel(handler.level)
            logger.propagate = False


class _QuietConsole(logging.Filter):
    """On the console (not in the UI), the CLI prints each expected failure itself, once:
    Prefect's lines about them (task failed, flow failed, the same message again) are dropped,
    and so are the tracebacks of Prefect's shutdown noise once the API is gone."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _VERBOSE:
            return True
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and isinstance(error, _expected_errors()):
            return False
        if error is not None and _api_failure(error) is not None:
            return False  # the API is gone: the CLI says so once, when the run gives up
        if record.levelno >= logging.ERROR and record.name.startswith("prefect."):
            message = record.getMessage()
            if "Finished in state " in message:  # the CLI's summary says how the run ended
                return False
            if _api_lost is not None:
                return False
            if any(name in message for name in _expected_names()):
                return False
        return True


_VERBOSE = 0
_api_lost: str | None = None


def _install_console_filter() -> None:
    """Add `_QuietConsole` to the console handlers Prefect configured (not its API handler)."""
    from prefect.logging.configuration import setup_logging

    setup_logging()
    quiet = _QuietConsole()
    seen: set[int] = set()
    loggers = [logging.getLogger(), *map(logging.getLogger, logging.root.manager.loggerDict)]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if id(handler) in seen or type(handler).__name__ == "APILogHandler":
                continue
            seen.add(id(handler))
            if isinstance(handler, logging.StreamHandler):
                handler.addFilter(quiet)


def _expected_errors() -> tuple[type[BaseException], ...]:
    from clients.protocol import ExchangeError
    from flows.bronze import WarehouseWriteFailed
    from tasks.bronze import FetchesFailed, PartitionFetchFailed
    from tasks.publish import PublishError
    from tasks.reports import PipelineFailed
    from tasks.silver_day import SilverDaysFailed

    return (
        InputError,
        PipelineFailed,
        PartitionFetchFailed,
        FetchesFailed,
        SilverDaysFailed,
        PublishError,
        ExchangeError,
        WarehouseWriteFailed,
    )


def _expected_names() -> tuple[str, ...]:
    return tuple(cls.__name__ for cls in _expected_errors())


# -- running a flow ----------------------------------------------------------------------------


def _api_url() -> str | None:
    return os.environ.get("PREFECT_API_URL") or None


def _run_url(state: Any) -> str | None:
    """The flow run's page in the UI when a server is used (not the temporary API)."""
    api = _api_url()
    run_id = getattr(getattr(state, "state_details", None), "flow_run_id", None)
    if not api or run_id is None:
        return None
    ui = os.environ.get("PREFECT_UI_URL") or api.rstrip("/").removesuffix("/api")
    return f"{ui.rstrip('/')}/runs/flow-run/{run_id}"


class ApiUnavailable(Exception):
    """The Prefect API did not come up, or was lost during the run."""


def _run_flow(factory: Callable[[], Any], *, title: str) -> Any:
    """Run a flow with progress bars, turning a Prefect API that is missing or lost into
    `ApiUnavailable` (one line, no traceback) and SIGTERM into `SystemExit(143)`."""
    from prefect.exceptions import TerminationSignal

    from flows.runner import mark_orphans_crashed, run_tags, run_with_progress

    global _api_lost
    _install_console_filter()
    try:
        mark_orphans_crashed(console)
        with run_tags():
            on_lost = _end_on_lost_signal if _owns_process() else None
            return run_with_progress(factory, title=title, on_lost_signal=on_lost)
    except TerminationSignal:
        console.print("[yellow]terminated[/yellow]: the flow run was marked Crashed")
        raise SystemExit(TERMINATED) from None
    except Exception as exc:
        lost = _api_failure(exc)
        if lost is None:
            raise
        _api_lost = lost
        raise ApiUnavailable(lost) from None


def _end_on_lost_signal(signal_error: BaseException) -> None:
    """SIGTERM reached Prefect's handler inside an event-loop callback, where asyncio drops
    the exception and the run would hang: mark this process's runs Crashed (bounded wait)
    and end as the graceful path would have, one line and exit 143."""
    import threading

    from flows.runner import own_runs_crashed

    def crash() -> None:
        with contextlib.suppress(Exception):
            asyncio.run(own_runs_crashed("the CLI process was terminated (SIGTERM)"))

    marker = threading.Thread(target=crash, name="crash-own-runs", daemon=True)
    marker.start()
    marker.join(timeout=15)
    console.print("[yellow]terminated[/yellow]: the flow run was marked Crashed")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(TERMINATED)


def _api_failure(exc: BaseException) -> str | None:
    """A one-line description if `exc` means the Prefect API is unavailable, else None."""
    import httpx

    api = _api_url() or "the temporary local Prefect API"
    for error in _chain(exc):
        if isinstance(error, httpx.TransportError | httpx.HTTPStatusError):
            return f"lost the Prefect API at {api}: {type(error).__name__}: {error}"
        text = str(error)
        if isinstance(error, RuntimeError) and "ephemeral" in text.lower():
            return (
                "the temporary local Prefect API did not start within "
                f"{os.environ.get('PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS')} s "
                "(set PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or PREFECT_API_URL to a "
                "running server)"
            )
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        error = todo.pop()
        if any(error is s for s in seen):
            continue
        seen.append(error)
        todo += [e for e in (error.__cause__, error.__context__) if e is not None]
        todo += list(getattr(error, "exceptions", ()))
    return seen


def _failures(error: BaseException) -> list[str]:
    """One line per failure a failed run's error names."""
    from tasks.reports import PipelineFailed

    text = str(error)
    if isinstance(error, PipelineFailed) and ": " in text:
        return [part.strip() for part in text.split(": ", 1)[1].split(" | ") if part.strip()]
    return [f"{type(error).__name__}: {text}" if not isinstance(error, InputError) else text]


def _error_text(error: BaseException) -> str:
    """An unexpected error as one line; a full disk names the file."""
    import errno

    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        where = error.filename or "the warehouse"
        return f"no space left on the device writing {where}"
    return f"{type(error).__name__}: {error}"


def _finish(
    state: Any,
    label: str,
    summary: RunSummary | None = None,
) -> int:
    """Print the end of a flow run (its summary, one error line per failure) and return the
    process exit code (2 when the run refused its input, as for input refused before it
    started)."""
    if state.is_completed():
        if summary is not None:
            summary.report = asyncio.run(state.aresult())
            summary.run_url = _run_url(state)
            summary.print(out)
        console.print(f"[green]{label} completed[/green]")
        return 0
    error = asyncio.run(state.aresult(raise_on_failure=False))
    if isinstance(error, InputError):
        console.print(f"[red]error:[/red] {error}", highlight=False)
        return 2
    if not isinstance(error, BaseException):
        console.print(f"[red]error:[/red] {label} failed: {state.message}", highlight=False)
        return 1
    failures = _failures(error) if isinstance(error, _expected_errors()) else []
    if summary is not None:
        summary.failures = failures or [_error_text(error)]
        summary.run_url = _run_url(state)
        summary.print(out)
    for line in failures or [_error_text(error)]:
        console.print(f"[red]error:[/red] {line}", highlight=False)
    if not isinstance(error, _expected_errors()) and _VERBOSE:
        import traceback

        traceback.print_exception(error, file=sys.stderr)
    console.print(f"[red]{label} failed[/red] ({len(failures) or 1} failure(s))")
    return 1


def _summary(
    title: str, settings: Settings, contexts: list[RunContext] | None = None
) -> RunSummary:
    from flows.report import RunSummary

    summary = RunSummary(title=title, warehouse=str(settings.warehouse))
    if contexts:
        for ctx in contexts:
            for exchange, row in ctx.client_stats().items():
                into = summary.requests.setdefault(exchange, {})
                for key, value in row.items():
                    into[key] = into.get(key, 0) + value
    return summary


# -- commands ----------------------------------------------------------------------------------


def backfill_range(
    start: str | None, end: str | None, days: int | None, today: date | None = None
) -> tuple[date, date]:
    """The inclusive range of `--start`/`--end`/`--days`: `--end` defaults to yesterday,
    `--days N` is the last N closed days; refused (naming the option) when inconsistent."""
    today = today or utc_today()
    yesterday = today - timedelta(days=1)
    if days is not None:
        if start is not None:
            raise InputError("--days and --start exclude each other: give one")
        if days < 1:
            raise InputError(f"--days {days}: expected a number of days >= 1")
        last = parse_date(end, name="--end") if end else yesterday
        return last - timedelta(days=days - 1), last
    if start is None:
        raise InputError("give --start YYYY-MM-DD (and --end, default yesterday) or --days N")
    first = parse_date(start, name="--start")
    last = parse_date(end, name="--end") if end else yesterday
    if end is None and first > yesterday:
        last = first  # --start today: today alone (an open day)
    return first, last


def _selection(args: argparse.Namespace) -> Selection:
    from models.selection import Selection

    first, last = backfill_range(args.start, args.end, args.days)
    return Selection.parse(
        start=first,
        end=last,
        exchanges=args.exchanges,
        symbols=args.symbols,
        intervals=args.intervals,
        datasets=args.datasets,
        force=args.force,
    )


def _plan_or_stop(
    settings: Settings, request: RunRequest, *, dry_run: bool, title: str
) -> int | None:
    """Plan from the coverage index without Prefect: print the plan for a dry run, or
    "nothing to do" with the coverage of the range; returns the exit code then, else None
    (there is work: run the flow)."""
    from flows.report import plan_run, print_plan, range_summary
    from storage import Warehouse

    warehouse = Warehouse.from_settings(settings)
    planned = plan_run(warehouse, request)
    if dry_run:
        print_plan(planned, out)
        out.print(f"dry run: nothing fetched or written (warehouse {settings.warehouse})")
        return 0
    if planned.empty and not settings.binance_archive_recheck:  # a recheck asks the archive
        out.print(range_summary(warehouse, request))
        out.print(
            f"{title}: nothing to do, every partition is complete in {settings.warehouse} "
            "(--force re-fetches)"
        )
        return 0
    return None


def cmd_backfill(args: argparse.Namespace) -> int:
    settings = _settings(args)
    selection = _selection(args)
    title = f"backfill {selection.start}..{selection.end}"
    request = selection.resolve(settings)
    if args.dry_run or not selection.force:
        stop = _plan_or_stop(settings, request, dry_run=args.dry_run, title=title)
        if stop is not None:
            return stop

    from flows.backfill import backfill_flow
    from flows.entry import using_settings

    contexts: list[RunContext] = []
    with using_settings(settings, contexts):
        state = _run_flow(
            lambda: backfill_flow(selection=selection, return_state=True), title=title
        )
    return _finish(state, "backfill", _summary(title, settings, contexts))


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    day = parse_date(args.date, name="--date") if args.date else utc_today() - timedelta(days=1)
    if day > utc_today():
        raise InputError(f"--date {day} is in the future (today is {utc_today()} UTC)")
    title = f"daily {day}"
    if args.no_publish:  # with a publish there is always something to check
        from models.selection import Selection

        request = Selection(start=day, end=day).resolve(settings)
        stop = _plan_or_stop(settings, request, dry_run=False, title=title)
        if stop is not None:
            return stop

    from flows.daily import daily_flow
    from flows.entry import using_settings

    contexts: list[RunContext] = []
    with using_settings(settings, contexts):
        state = _run_flow(
            lambda: daily_flow(day=day, publish=not args.no_publish, return_state=True),
            title=title,
        )
    return _finish(state, "daily run", _summary(title, settings, contexts))


def cmd_publish(args: argparse.Namespace) -> int:
    from flows.entry import using_settings
    from flows.gold import gold_flow
    from models.settings import validate_repo_id

    settings = _settings(args)
    if args.repo_id:
        validate_repo_id(args.repo_id)
    with using_settings(settings):
        state = _run_flow(
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
        if url := _run_url(state):
            out.print(f"flow run: {url}")
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


def cmd_discard(args: argparse.Namespace) -> int:
    from storage import Warehouse
    from storage.discard import discard

    start = parse_date(args.start, name="start date")
    end = parse_date(args.end, name="end date")
    try:
        report = discard(
            Warehouse.from_settings(_settings(args)),
            dataset=args.dataset,
            exchange=args.exchange,
            interval=args.interval,
            start=start,
            end=end,
            reason=args.reason,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None
    for uri in report.files:
        out.print(f"removed {uri}")
    console.print(f"[yellow]{report}[/yellow]; the next backfill of {start}..{end} fetches them")
    return 0


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
    "discard": cmd_discard,
    "sandbox": cmd_sandbox,
    "demo": cmd_demo,
}


def _owns_process() -> bool:
    """Whether this process runs the CLI alone (the console script, `python -m`), so it may
    end itself at once; a test runner calling `main` in its own process may not."""
    return "pytest" not in sys.modules


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM outside a flow run, or re-sent by Prefect once it has marked the run Crashed
    (it restores the previous handler, this one, and signals again): one line, exit 143."""
    console.print("[yellow]terminated[/yellow]")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(TERMINATED)


def main(argv: Sequence[str] | None = None) -> int:
    global _VERBOSE, _api_lost
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(with_sandbox="sandbox" in argv).parse_args(argv)
    _VERBOSE = args.verbose
    _api_lost = None
    _configure_logging(args.verbose)
    if _owns_process():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return COMMANDS[args.command](args)
    except InputError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        return 2
    except ApiUnavailable as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        if _api_lost is not None and _owns_process():
            # Prefect's log and event workers would retry the dead API at exit for minutes;
            # every warehouse write is already whole (atomic), so leave now.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(API_UNAVAILABLE)
        logging.disable(logging.CRITICAL)
        return API_UNAVAILABLE
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        return INTERRUPTED
    except OSError as exc:
        if args.verbose:
            raise
        console.print(f"[red]error:[/red] {_error_text(exc)}", highlight=False)
        return 1


if __name__ == "__main__":
    sys.exit(main())
