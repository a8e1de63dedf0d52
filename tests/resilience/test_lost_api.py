"""A Prefect server lost mid-run: the CLI says so in one line and exits non-zero, and the run
it left RUNNING is marked Crashed when the next CLI run starts."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.resilience.support import DATASETS, cli_args, cli_env, data_files, finish, start_cli


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`prefect server start` on a copy of the session's (already migrated) database."""

    def __init__(self, home: Path, db: Path, port: int) -> None:
        self.home, self.db, self.port = home, db, port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            {
                "PREFECT_HOME": str(self.home),
                "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{self.db}",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_UI_ENABLED": "false",
            }
        )
        prefect = str(Path(sys.executable).with_name("prefect"))
        self.proc = subprocess.Popen(
            [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise AssertionError("the test's Prefect server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def server(tmp_path: Path, prefect_db: Path) -> Iterator[Server]:
    db = tmp_path / "prefect.db"
    with sqlite3.connect(prefect_db) as source, sqlite3.connect(db) as copy:
        source.backup(copy)
    found = Server(tmp_path / "server-home", db, _free_port())
    found.start()
    yield found
    found.kill()


def _run_states(api_url: str, name: str, pid: int) -> list[str]:
    """State types of the flow runs named `name` that the CLI process `pid` started (its
    process tag), on the server at `api_url` (its database is a copy of the suite's, which
    holds other tests' runs of the same range)."""
    code = (
        "import asyncio, sys\n"
        "from prefect import get_client\n"
        "from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName\n"
        "async def main():\n"
        "    async with get_client() as c:\n"
        "        runs = await c.read_flow_runs(flow_run_filter=FlowRunFilter("
        f"name=FlowRunFilterName(any_=[{name!r}])))\n"
        "        print(' '.join(r.state_type.value for r in runs\n"
        f"                       if any(':{pid}:' in t for t in r.tags)))\n"
        "asyncio.run(main())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_API_URL"] = api_url
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_lost_api_one_line_then_orphan_marked_crashed(
    tmp_path: Path, sandbox: Any, server: Server
) -> None:
    """Injected: the Prefect server is SIGKILLed while the CLI's backfill writes bronze
    (slow writes); then the server comes back and another backfill starts. Held: the CLI
    exits 3 within a minute with one `lost the Prefect API` line and no traceback (it ran
    on for 144 s and printed raw httpx tracebacks); the flow run it left RUNNING is marked
    Crashed by the next CLI run, which says so."""
    root = tmp_path / "wh"
    env = cli_env(
        tmp_path / "home",
        str(root),
        api_url=server.api_url,
        extra={"RESILIENCE_SLOW_FSYNC": "0.3"},
    )
    name = f"backfill {cli_args()[2]}..{cli_args()[4]}"
    proc = start_cli([*cli_args(), "--sandbox", sandbox.url], env, tmp_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not data_files(root, "bronze", datasets=DATASETS):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    server.kill()
    killed = time.monotonic()
    done = finish(proc, timeout=150)
    after = time.monotonic() - killed
    assert done.code == 3, (done.code, done.stderr[-3000:])
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "lost the Prefect API" in errors[0], done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    print(f"CLI exited {after:.1f} s after the server was killed")
    assert after < 60, f"the CLI ran on for {after:.0f} s without its API"

    server.start()
    assert _run_states(server.api_url, name, proc.pid) == ["RUNNING"]
    env2 = cli_env(tmp_path / "home2", str(tmp_path / "wh2"), api_url=server.api_url)
    args = cli_args(date(2024, 3, 1), date(2024, 3, 1))
    second = finish(start_cli([*args, "--sandbox", sandbox.url], env2, tmp_path), timeout=150)
    assert second.code == 0, second.stderr[-3000:]
    assert f"flow run {name!r}" in second.stderr and "marked Crashed" in second.stderr
    assert _run_states(server.api_url, name, proc.pid) == ["CRASHED"]
