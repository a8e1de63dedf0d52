"""The fake Hub's state: repositories (blobs, commits, trees) and the server-wide `HubState`.

`HubState` is what the HTTP handlers (`server.build_app`) and the `FakeHub` controller share:
neither imports the other.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

INITIAL_GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"
FOREIGN_PATH = "NOTES.md"
Fault = Literal["429-before", "429-after", "500-after", "412", "foreign-commit"]
FAULTS: tuple[Fault, ...] = ("429-before", "429-after", "500-after", "412", "foreign-commit")
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


class StaleParentError(Exception):
    """The commit names a parent that is no longer the branch head."""


class MissingEntryError(Exception):
    """A path or revision does not exist."""


def git_blob_sha1(content: bytes) -> str:
    return hashlib.sha1(f"blob {len(content)}\0".encode() + content).hexdigest()


@dataclass(frozen=True)
class Commit:
    oid: str
    parent: str | None
    title: str
    description: str
    files: dict[str, str]  # path -> blob oid
    date: datetime


@dataclass
class Repo:
    repo_id: str
    private: bool
    blobs: dict[str, bytes] = field(default_factory=dict)
    history: list[Commit] = field(default_factory=list)  # oldest first

    @property
    def head(self) -> Commit:
        return self.history[-1]

    def resolve(self, revision: str) -> Commit:
        """`main` or a full/abbreviated commit oid."""
        if revision == "main":
            return self.head
        for commit in reversed(self.history):
            if len(revision) >= 7 and commit.oid.startswith(revision):
                return commit
        raise MissingEntryError(f"revision {revision!r} not found in {self.repo_id}")

    def content(self, commit: Commit, path: str) -> bytes:
        if path not in commit.files:
            raise MissingEntryError(f"{path!r} not found in {self.repo_id}@{commit.oid[:8]}")
        return self.blobs[commit.files[path]]

    def commit(
        self,
        *,
        title: str,
        description: str = "",
        parent: str | None,
        added: dict[str, bytes],
        deleted_files: list[str],
        deleted_folders: list[str],
    ) -> Commit:
        """Apply one commit atomically on top of the head; `parent` must be the head if given."""
        head = self.head if self.history else None
        if parent is not None and (head is None or not head.oid.startswith(parent)):
            raise StaleParentError("A commit has happened since. Please refresh and try again.")
        files = dict(head.files) if head else {}
        for path in deleted_files:
            if path not in files:
                raise MissingEntryError(f"A file with this name doesn't exist: {path}")
            del files[path]
        for folder in deleted_folders:
            prefix = folder.rstrip("/") + "/"
            doomed = [p for p in files if p.startswith(prefix)]
            if not doomed:
                raise MissingEntryError(f"A folder with this name doesn't exist: {folder}")
            for path in doomed:
                del files[path]
        for path, content in added.items():
            oid = git_blob_sha1(content)
            self.blobs[oid] = content
            files[path] = oid
        seed = f"{head.oid if head else ''}\n{title}\n{len(self.history)}\n{sorted(files.items())}"
        commit = Commit(
            oid=hashlib.sha1(seed.encode()).hexdigest(),
            parent=head.oid if head else None,
            title=title,
            description=description,
            files=files,
            date=_EPOCH + timedelta(minutes=len(self.history)),
        )
        self.history.append(commit)
        return commit

    def entries(self, commit: Commit, folder: str, *, recursive: bool) -> list[dict[str, object]]:
        """Tree entries (files and folders) under `folder` ('' for the root), sorted by path."""
        prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
        found: dict[str, dict[str, object]] = {}
        for path, oid in commit.files.items():
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].split("/")
            depth = len(parts) if recursive else 1
            for level in range(1, min(depth, len(parts) - 1) + 1):
                sub = prefix + "/".join(parts[:level])
                found[sub] = {"type": "directory", "path": sub, "oid": _tree_oid(commit, sub)}
            if recursive or len(parts) == 1:
                found[path] = self.file_entry(path, oid)
        if prefix and not found:
            raise MissingEntryError(f"folder {folder!r} not found in {self.repo_id}")
        return [found[k] for k in sorted(found)]

    def path_info(self, commit: Commit, path: str) -> dict[str, object] | None:
        path = path.strip("/")
        if path in commit.files:
            return self.file_entry(path, commit.files[path])
        if any(p.startswith(path + "/") for p in commit.files):
            return {"type": "directory", "path": path, "oid": _tree_oid(commit, path)}
        return None

    def file_entry(self, path: str, oid: str) -> dict[str, object]:
        return {"type": "file", "path": path, "oid": oid, "size": len(self.blobs[oid])}


def _tree_oid(commit: Commit, folder: str) -> str:
    members = sorted((p, o) for p, o in commit.files.items() if p.startswith(folder + "/"))
    return hashlib.sha1(repr(members).encode()).hexdigest()


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str  # raw path and query string, exactly as received
    status: int
    authorized: bool


@dataclass
class HubState:
    """Everything the server answers from; every access to `repos`, `faults` and `requests`
    holds `lock` (the server thread and the test thread both use them)."""

    token: str | None
    user: str
    page_size: int
    url: str = ""
    repos: dict[str, Repo] = field(default_factory=dict)
    faults: deque[Fault] = field(default_factory=deque)
    requests: list[RequestRecord] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def get(self, repo_id: str) -> Repo:
        with self.lock:
            if repo_id not in self.repos:
                raise KeyError(f"no repo {repo_id!r} on the fake Hub")
            return self.repos[repo_id]

    def next_fault(self) -> Fault | None:
        with self.lock:
            return self.faults.popleft() if self.faults else None

    def log(self, method: str, path: str, status: int, authorized: bool) -> None:
        with self.lock:
            self.requests.append(RequestRecord(method, path, status, authorized))

    def commit_as_other(self, repo_id: str, content: bytes) -> str:
        """Another writer's commit on main (adds or rewrites NOTES.md); returns its oid."""
        with self.lock:
            repo = self.get(repo_id)
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
