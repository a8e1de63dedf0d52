"""Replace a dataset folder as a set: lock, stage the next version beside it, swap, clean up.

Next to the target `{parent}/{name}`:
- `.{name}.lock` is flock'ed for the whole publish (kept afterwards: deleting a lock file races);
- `.{name}.stage-{uuid}` holds the next version while it is assembled (hard links to the files
  that stay, copies of the new ones) and, after an exchange, the previous version until removed;
- `.{name}.old-{uuid}` exists only inside the two-rename fallback (where no atomic exchange is
  available), between moving the old version away and moving the new one in.

A kill at any point leaves the target as the old version or the new one (or, in the fallback's
one-rename window, moved aside and restored by the next publish); leftovers are removed by the
next publish, under the lock, before it reads the target.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

from tasks.publish.manifest import PublishError

log = logging.getLogger(__name__)

LOCK_TIMEOUT = 600.0
LOCK_POLL = 0.05
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_NO_EXCHANGE = frozenset({errno.ENOSYS, errno.EINVAL, errno.ENOTSUP})


def lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


def _stage_prefix(target: Path) -> str:
    return f".{target.name}.stage-"


def _old_prefix(target: Path) -> str:
    return f".{target.name}.old-"


@contextmanager
def folder_lock(target: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Exclusive `flock` on the target's lock file, polled until `timeout` seconds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    path = lock_path(target)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise PublishError(
                        f"another publish to {target} still holds {path} after {timeout:.0f} s"
                    ) from None
                time.sleep(LOCK_POLL)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def recover(target: Path) -> None:
    """Undo what a killed publish left (call with the lock held): restore a version moved
    aside by the fallback swap, remove stage folders and stray `.*.tmp` files in the target."""
    parent = target.parent
    if not parent.is_dir():
        return
    olds = sorted(p for p in parent.iterdir() if p.name.startswith(_old_prefix(target)))
    if olds and not target.exists():
        log.warning("restoring %s from %s left by an interrupted publish", target, olds[-1])
        os.rename(olds[-1], target)
        olds = olds[:-1]
    stages = [p for p in parent.iterdir() if p.name.startswith(_stage_prefix(target))]
    for leftover in (*olds, *stages):
        log.warning("removing %s left by an interrupted publish", leftover)
        _remove(leftover)
    if target.is_dir():
        for tmp in target.rglob(".*.tmp"):
            if tmp.is_file() or tmp.is_symlink():
                log.warning("removing stale temp file %s", tmp)
                tmp.unlink(missing_ok=True)


def replace_folder(
    target: Path, uploads: Mapping[str, Path], deleted: frozenset[str] | set[str]
) -> None:
    """Make `target` its current content with `uploads` (repo path -> source file) written and
    `deleted` removed, in one swap. Call with the lock held."""
    stage = target.parent / f"{_stage_prefix(target)}{uuid.uuid4().hex}"
    try:
        _assemble(stage, target, uploads, deleted)
        _swap(stage, target)
    finally:
        _remove(stage)  # the unfinished stage on failure; the previous version after a swap


def _assemble(
    stage: Path, current: Path, uploads: Mapping[str, Path], deleted: frozenset[str] | set[str]
) -> None:
    stage.mkdir()
    if current.is_dir():
        shutil.copymode(current, stage)
        skip = set(uploads) | set(deleted)
        for root, dirs, files in os.walk(current):
            rel_root = Path(root).relative_to(current)
            for name in dirs:
                source = Path(root) / name
                if source.is_symlink():
                    _link_or_copy(source, stage / rel_root / name)
                else:
                    (stage / rel_root / name).mkdir()
            for name in files:
                rel = (rel_root / name).as_posix()
                if rel in skip or (name.startswith(".") and name.endswith(".tmp")):
                    continue
                _link_or_copy(Path(root) / name, stage / rel)
    for repo_path, source in sorted(uploads.items()):
        dest = stage / repo_path
        dest.parent.mkdir(parents=True, exist_ok=True)
        _copy_durably(source, dest)
    _prune_empty(stage / "data")
    _fsync_dir(stage)


def _swap(stage: Path, target: Path) -> None:
    """Exchange atomically where the OS can; else move the old version aside, then the new in."""
    if not target.exists():
        os.rename(stage, target)
    elif not _exchange(stage, target):
        aside = target.parent / f"{_old_prefix(target)}{uuid.uuid4().hex}"
        os.rename(target, aside)
        os.rename(stage, target)
        _remove(aside)
    _fsync_dir(target.parent)


def _exchange(a: Path, b: Path) -> bool:
    """Linux `renameat2(RENAME_EXCHANGE)`; False where the platform or filesystem lacks it."""
    try:
        func = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    func.restype = ctypes.c_int
    if func(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _NO_EXCHANGE:
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def _link_or_copy(source: Path, dest: Path) -> None:
    """A hard link (same inode, no bytes copied); a copy where links are not possible."""
    if source.is_symlink():
        os.symlink(os.readlink(source), dest)
        return
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def _copy_durably(source: Path, dest: Path) -> None:
    shutil.copyfile(source, dest)
    with dest.open("rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _prune_empty(folder: Path) -> None:
    if not folder.is_dir():
        return
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        if not sub.is_symlink() and not any(sub.iterdir()):
            sub.rmdir()


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path)
