"""`FakeHub`: the fake Hub server on an ephemeral 127.0.0.1 port, run in a background thread."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Self

from aiohttp import web

from tests.fake_hub.server import build_app
from tests.fake_hub.state import FAULTS, Fault, HubState, RequestRecord, XetRequest

__all__ = ["FAULTS", "CommitView", "FakeHub", "Fault", "RequestRecord", "XetRequest"]


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
        self.host = host
        self.state = HubState(token=token, user=user, page_size=page_size)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        with self.state.lock:
            return f"FakeHub(url={self.url!r}, repos={sorted(self.state.repos)})"

    @property
    def url(self) -> str:
        return self.state.url

    @property
    def token(self) -> str | None:
        return self.state.token

    @property
    def user(self) -> str:
        return self.state.user

    @property
    def page_size(self) -> int:
        return self.state.page_size

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
        self._runner = web.AppRunner(build_app(self.state), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.state.url = f"http://{self.host}:{port}"

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
        with self.state.lock:
            self.state.faults.extend([fault] * times)

    def commits(self, repo_id: str) -> list[CommitView]:
        """The repo's commits on main, oldest first (the first one is the repo creation)."""
        with self.state.lock:
            repo = self.state.get(repo_id)
            return [
                CommitView(c.oid, c.parent, c.title, c.description, tuple(sorted(c.files)), c.date)
                for c in repo.history
            ]

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """Path -> bytes at `revision` (an LFS file's content, not its pointer)."""
        with self.state.lock:
            repo = self.state.get(repo_id)
            commit = repo.resolve(revision)
            return {path: repo.content(commit, path) for path in sorted(commit.files)}

    def lfs_paths(self, repo_id: str, revision: str = "main") -> dict[str, str]:
        """Path -> sha256 of the files committed as LFS pointers at `revision`."""
        with self.state.lock:
            repo = self.state.get(repo_id)
            commit = repo.resolve(revision)
            return {
                path: repo.lfs[oid].sha256
                for path, oid in sorted(commit.files.items())
                if oid in repo.lfs
            }

    def pointers(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """Path -> what the git tree holds (the pointer file for an LFS file)."""
        with self.state.lock:
            repo = self.state.get(repo_id)
            commit = repo.resolve(revision)
            return {path: repo.blobs[oid] for path, oid in sorted(commit.files.items())}

    @property
    def xet_requests(self) -> list[XetRequest]:
        with self.state.lock:
            return list(self.state.xet_requests)

    @property
    def requests(self) -> list[RequestRecord]:
        with self.state.lock:
            return list(self.state.requests)

    def commit_as_other(self, repo_id: str, content: bytes = b"written by another client\n") -> str:
        """Another writer's commit on main (adds or rewrites NOTES.md); returns its oid."""
        return self.state.commit_as_other(repo_id, content)
