"""The fake Hub's state: repositories (blobs, commits, trees) and the server-wide `HubState`.

`HubState` is what the HTTP handlers (`server.build_app`) and the `FakeHub` controller share:
neither imports the other.
"""

from __future__ import annotations

import fnmatch
import hashlib
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

INITIAL_GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"
# The Hub stores files at least this large in LFS/Xet whatever `.gitattributes` says.
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"
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


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-LFS pointer file a repo's git tree holds in place of an LFS file."""
    return LFS_POINTER.format(oid=sha256, size=size).encode()


def lfs_patterns(gitattributes: bytes) -> list[str]:
    """The patterns a `.gitattributes` routes through LFS (`filter=lfs`)."""
    patterns = []
    for line in gitattributes.decode("utf-8", "replace").splitlines():
        parts = line.split()
        if len(parts) >= 2 and not parts[0].startswith("#") and "filter=lfs" in parts[1:]:
            patterns.append(parts[0])
    return patterns


def matches_lfs(path: str, patterns: list[str]) -> bool:
    """git's rule: a pattern without a slash matches the file name at any depth."""
    name = path.rsplit("/", 1)[-1]
    return any(
        fnmatch.fnmatchcase(path if "/" in pattern else name, pattern.lstrip("/"))
        for pattern in patterns
    )


@dataclass(frozen=True)
class LfsEntry:
    """A file committed as an LFS pointer: its sha256 and size; `xet` if uploaded through Xet."""

    sha256: str
    size: int
    xet: bool = False


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
    lfs: dict[str, LfsEntry] = field(default_factory=dict)  # pointer blob oid -> LFS object
    store: dict[str, bytes] = field(default_factory=dict)  # the LFS storage: sha256 -> bytes
    xet_uploads: int = 0  # requests the CAS stand-in accepted for this repo
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
        """The file's bytes (an LFS file's from the LFS storage, not its pointer)."""
        if path not in commit.files:
            raise MissingEntryError(f"{path!r} not found in {self.repo_id}@{commit.oid[:8]}")
        oid = commit.files[path]
        entry = self.lfs.get(oid)
        if entry is None:
            return self.blobs[oid]
        if entry.sha256 not in self.store:
            raise MissingEntryError(f"{path!r} was uploaded through Xet: no bytes on the fake Hub")
        return self.store[entry.sha256]

    def upload_mode(self, commit: Commit | None, path: str, size: int) -> str:
        """`lfs` for a path the head's `.gitattributes` routes through LFS, or a large file."""
        attributes = self.blobs.get(commit.files.get(".gitattributes", "")) if commit else None
        routed = matches_lfs(path, lfs_patterns(attributes or b""))
        return "lfs" if routed or size >= LFS_SIZE_THRESHOLD else "regular"

    def remote_oid(self, commit: Commit, path: str) -> str | None:
        """What preupload answers as `oid`: the sha256 of an LFS file, else the git blob sha1."""
        oid = commit.files.get(path)
        if oid is None:
            return None
        entry = self.lfs.get(oid)
        return entry.sha256 if entry is not None else oid

    def add_lfs_pointer(self, sha256: str, size: int, *, xet: bool) -> bytes:
        """Record an LFS object as committed; returns the pointer file's bytes."""
        pointer = lfs_pointer(sha256, size)
        self.lfs[git_blob_sha1(pointer)] = LfsEntry(sha256, size, xet)
        return pointer

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
        entry = self.lfs.get(oid)
        if entry is None:
            return {"type": "file", "path": path, "oid": oid, "size": len(self.blobs[oid])}
        pointer = self.blobs[oid]
        listed: dict[str, object] = {
            "type": "file",
            "path": path,
            "oid": oid,
            "size": entry.size,
            "lfs": {"oid": entry.sha256, "size": entry.size, "pointerSize": len(pointer)},
        }
        if entry.xet:
            listed["xetHash"] = hashlib.sha256(b"xet:" + entry.sha256.encode()).hexdigest()
        return listed


def _tree_oid(commit: Commit, folder: str) -> str:
    members = sorted((p, o) for p, o in commit.files.items() if p.startswith(folder + "/"))
    return hashlib.sha1(repr(members).encode()).hexdigest()


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str  # raw path and query string, exactly as received
    status: int
    authorized: bool


@dataclass(frozen=True)
class XetRequest:
    """One request to the Xet CAS stand-in; `authorized` if it bore a token the Hub issued."""

    method: str
    path: str
    size: int
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
    xet_tokens: dict[str, str] = field(default_factory=dict)  # CAS token -> repo id
    xet_requests: list[XetRequest] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def issue_xet_token(self, repo_id: str) -> str:
        with self.lock:
            token = f"xet_{hashlib.sha256(f'{repo_id}{len(self.xet_tokens)}'.encode()).hexdigest()}"
            self.xet_tokens[token] = repo_id
            return token

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
