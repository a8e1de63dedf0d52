"""`FakeHub`: the fake Hub server on an ephemeral 127.0.0.1 port, run in a background thread."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Literal, Self

from aiohttp import web

from tests.fake_hub.server import build_app
from tests.fake_hub.state import Repo

Fault = Literal["429-before", "429-after", "500-after", "412", "foreign-commit"]
FAULTS: tuple[Fault, ...] = ("429-before", "429-after", "500-after", "412", "foreign-commit")
FOREIGN_PATH = "NOTES.md"


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str  # raw path and query string, exactly as received
    status: int
    authorized: bool


@dataclass(frozen=True)
class CommitView:
    oid: str
    parent: str | None
    title: str
    description: str
    paths: tuple[str, ...]
    date: datetime


class FakeHub:
    """An in-memory Hub for dataset repos, speaking the HTTP protocol of `huggingface_hub`.

    `inject(fault)` makes the next commit fail: `429-before` (refused, nothing applied),
    `429-after` / `500-after` (applied, but the client sees an error), `412` (refused as stale),
    `foreign-commit` (another writer commits first, so the parent really is stale).
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        user: str = "tester",
        host: str = "127.0.0.1",
        page_size: int = 1000,
    ) -> None:
        self.token = token
        self.user = user
        self.host = host
        self.page_size = page_size
        self.url = ""
        self._repos: dict[str, Repo] = {}
        self._faults: deque[Fault] = deque()
        self._requests: list[RequestRecord] = []
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"FakeHub(url={self.url!r}, repos={sorted(self._repos)})"

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("fake Hub already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._open())
            except BaseException as exc:
                failure.append(exc)
                loop.close()
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=serve, name="fake-hub", daemon=True)
        self._thread.start()
        ready.wait(timeout=30)
        if failure:
            raise RuntimeError(f"fake Hub failed to start on {self.host}") from failure[0]
        return self

    async def _open(self) -> None:
        self._runner = web.AppRunner(build_app(self), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://{self.host}:{port}"

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def inject(self, fault: Fault, times: int = 1) -> None:
        """Make the next `times` commit requests fail as `fault` describes."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r} (known: {', '.join(FAULTS)})")
        with self._lock:
            self._faults.extend([fault] * times)

    def commits(self, repo_id: str) -> list[CommitView]:
        """The repo's commits on main, oldest first (the first one is the repo creation)."""
        with self._lock:
            repo = self._get(repo_id)
            return [
                CommitView(c.oid, c.parent, c.title, c.description, tuple(sorted(c.files)), c.date)
                for c in repo.history
            ]

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        with self._lock:
            repo = self._get(repo_id)
            commit = repo.resolve(revision)
            return {path: repo.blobs[oid] for path, oid in sorted(commit.files.items())}

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def commit_as_other(self, repo_id: str, content: bytes = b"written by another client\n") -> str:
        """Another writer's commit on main (adds or rewrites NOTES.md); returns its oid."""
        with self._lock:
            repo = self._get(repo_id)
            previous = repo.head.files.get(FOREIGN_PATH)
            if previous is not None and repo.blobs[previous] == content:
                content += b"again\n"
            landed = repo.commit(
                title="Edit notes",
                parent=None,
                added={FOREIGN_PATH: content},
                deleted_files=[],
                deleted_folders=[],
            )
            return landed.oid

    def _get(self, repo_id: str) -> Repo:
        if repo_id not in self._repos:
            raise KeyError(f"no repo {repo_id!r} on the fake Hub")
        return self._repos[repo_id]

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _log(self, method: str, path: str, status: int, authorized: bool) -> None:
        with self._lock:
            self._requests.append(RequestRecord(method, path, status, authorized))
