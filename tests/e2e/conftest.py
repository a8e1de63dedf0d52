"""A real Prefect server on PostgreSQL, the project's deployments, and process workers.

The deployments are those of prefect.yaml, pull steps included: every flow run clones the code
(a snapshot of this working tree in a local git repository, `deployments.setup --git-snapshot`)
into its own temporary directory and runs from there.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG_DSN = os.environ.get("CRYPTO_PIPELINE_TEST_PG", "postgres@127.0.0.1:5432")


def postgres(statement: str) -> None:
    """Run one statement on the server's `postgres` database (trust auth on loopback)."""
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(f"postgresql://{PG_DSN}/postgres")
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def postgres_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            return True
    except OSError:
        return False


@dataclass
class PrefectStack:
    api_url: str
    env: dict[str, str]
    home: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run(self, *args: str, timeout: float = 180, env: dict[str, str] | None = None) -> str:
        proc = subprocess.run(
            [str(BIN / "prefect"), *args],
            cwd=REPO,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert proc.returncode == 0, (
            f"prefect {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        )
        return proc.stdout

    def start_worker(
        self, name: str, env: dict[str, str], limit: int | None = None
    ) -> subprocess.Popen[bytes]:
        """A process worker of the pool; `limit`: at most that many flow runs at once."""
        log = open(self.home / f"worker-{name}.log", "wb")  # noqa: SIM115 - lives with the worker
        worker = subprocess.Popen(
            [
                str(BIN / "prefect"),
                "worker",
                "start",
                "--pool",
                "crypto-pipeline",
                "--name",
                name,
                "--type",
                "process",
                *(["--limit", str(limit)] if limit else []),
            ],
            cwd=REPO,
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.workers.append(worker)
        return worker

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
        self.workers.clear()


@pytest.fixture(scope="session")
def prefect_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectStack]:
    """`prefect server start` on a fresh PostgreSQL database, work pool and deployments."""
    if not postgres_available():
        pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432 (.ci/run starts it)")
    home = tmp_path_factory.mktemp("prefect-home")
    database = f"prefect_e2e_{uuid.uuid4().hex[:10]}"
    postgres(f"CREATE DATABASE {database}")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PREFECT_", "CRYPTO_PIPELINE_"))
        },
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://{PG_DSN}/{database}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "1",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    }
    server_log = open(home / "server.log", "wb")  # noqa: SIM115 - lives with the server
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=server_log,
        stderr=subprocess.STDOUT,
    )
    stack = PrefectStack(api_url=api_url, env=env, home=home)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{api_url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((home / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        # the pull steps clone the code on the worker (prefect.yaml): here from a snapshot of
        # this working tree, committed into a local repository, through the same steps
        subprocess.run(
            [str(BIN / "python"), "-m", "deployments.setup", "--git-snapshot", str(home / "src")],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        stack.run("--no-prompt", "deploy", "--all")
        yield stack
    finally:
        stack.stop_workers()
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        postgres(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


async def run_and_wait(stack: PrefectStack, name: str, parameters: dict[str, Any]) -> Any:
    """Create a run of a deployment and wait for its final state through the API."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    run = await run_deployment(name=name, parameters=parameters, timeout=0)  # type: ignore[misc]
    async with get_client() as client:
        for _ in range(600):
            flow_run = await client.read_flow_run(run.id)
            if flow_run.state is not None and flow_run.state.is_final():
                return flow_run
            await asyncio.sleep(0.5)
    raise AssertionError(f"{name} did not finish; see worker logs in {stack.home}")


@pytest.fixture
def api_env(prefect_stack: PrefectStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[PrefectStack]:
    """This test process talks to the stack's server, also when another test module's
    temporary Prefect server (whose settings override the environment) is active."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.setenv("PREFECT_API_URL", prefect_stack.api_url)
    with temporary_settings({PREFECT_API_URL: prefect_stack.api_url}):
        yield prefect_stack
