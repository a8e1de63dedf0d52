"""The local dataset folder is replaced as a set (issue 15 case 9): locked, staged, swapped, clean.

Kills, failures and concurrent publishes must leave the old dataset or the new one, never a mix,
and no temp or staging files once a publish has run.
"""

from __future__ import annotations

import errno
import pickle
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tasks.publish import Manifest, PublishError, publish_to_local

KILL_AFTER_SECOND_COPY = """
import os, pickle, shutil, signal, sys
from pathlib import Path
from tasks.publish import publish_to_local

staging, manifest = pickle.loads(Path(sys.argv[1]).read_bytes())
real, calls = shutil.copyfile, []

def copy_then_die(src, dst, **kwargs):
    result = real(src, dst, **kwargs)
    calls.append(dst)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return result

shutil.copyfile = copy_then_die
publish_to_local(staging, manifest, local_dir=Path(sys.argv[2]))
"""


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def _expected(manifest: Manifest) -> dict[str, bytes]:
    return {f.repo_path: f.local_path.read_bytes() for f in manifest.files}


def _leftovers(out: Path) -> list[str]:
    """Temp and staging files of publishes: anything beside `out` but its lock, `.*.tmp` in it."""
    beside = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    inside = [p.relative_to(out).as_posix() for p in out.rglob(".*.tmp")]
    return sorted(n for n in beside if n != f".{out.name}.lock") + sorted(inside)


def _doubled(silver: dict[str, pl.LazyFrame]) -> dict[str, pl.LazyFrame]:
    """Same rows and files, different values: volumes doubled everywhere they exist."""
    return {
        name: frame.with_columns(pl.col("volume") * 2)
        if "volume" in frame.collect_schema()
        else frame
        for name, frame in silver.items()
    }


@pytest.fixture
def published(make_silver, stage_dataset, tmp_path: Path) -> tuple[Path, Manifest, Manifest]:
    """`out` holds a 3-day publish; returns it with the 3-day and a 4-day (changed) build."""
    out = tmp_path / "out"
    old = stage_dataset(make_silver(3), tmp_path / "d3", repo_id=None)
    publish_to_local(tmp_path / "d3", old, local_dir=out)
    new = stage_dataset(make_silver(4), tmp_path / "d4", repo_id=None)
    return out, old, new


def test_kill_mid_publish_leaves_the_old_dataset(published, tmp_path: Path) -> None:
    """Injected: SIGKILL of the publishing process right after its second file copy (new data
    already written). Held: the folder is exactly the old dataset; the next publish removes what
    the kill left and lands the new dataset whole, leaving no temp or staging files."""
    out, old, new = published
    assert len({f.repo_path for f in new.files} - {"README.md"}) > 2
    job = tmp_path / "job.pickle"
    job.write_bytes(pickle.dumps((tmp_path / "d4", new)))
    child = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_SECOND_COPY, str(job), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert _tree(out) == _expected(old)
    publish_to_local(tmp_path / "d4", new, local_dir=out)
    assert _tree(out) == _expected(new)
    assert _leftovers(out) == []


def test_failure_mid_publish_leaves_the_old_dataset_and_no_temp_files(
    published, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Injected: ENOSPC on the second file copy. Held: `PublishError` naming the folder; the folder
    is exactly the old dataset and no temp or staging file is left."""
    out, old, new = published
    real, calls = shutil.copyfile, []

    def full_disk(src: Any, dst: Any, **kwargs: Any) -> Any:
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", full_disk)
    with pytest.raises(PublishError, match=f"publishing to {out} failed"):
        publish_to_local(tmp_path / "d4", new, local_dir=out)
    assert _tree(out) == _expected(old)
    assert _leftovers(out) == []


def test_concurrent_publishes_never_crash_or_mix(
    make_silver, stage_dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Injected: two threads publishing different builds (same sizes, different values) to one
    folder at once, three rounds, with each file copy slowed to widen the race. Held: no publish
    fails, the folder is always exactly one of the two builds, no temp files are left."""
    out = tmp_path / "out"
    builds = [
        (tmp_path / "a", stage_dataset(make_silver(3), tmp_path / "a", repo_id=None)),
        (tmp_path / "b", stage_dataset(_doubled(make_silver(3)), tmp_path / "b", repo_id=None)),
    ]
    real = shutil.copyfile

    def slow_copy(src: Any, dst: Any, **kwargs: Any) -> Any:
        result = real(src, dst, **kwargs)
        time.sleep(0.01)
        return result

    monkeypatch.setattr(shutil, "copyfile", slow_copy)
    errors: list[BaseException] = []

    def publish(staging: Path, manifest: Manifest) -> None:
        try:
            publish_to_local(staging, manifest, local_dir=out)
        except BaseException as exc:
            errors.append(exc)

    outcomes = [_expected(m) for _, m in builds]
    for _ in range(3):
        threads = [threading.Thread(target=publish, args=build) for build in builds]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        assert _tree(out) in outcomes
        assert _leftovers(out) == []
        builds.reverse()


def test_a_held_lock_makes_a_publish_wait_then_fail_clearly(published, tmp_path: Path) -> None:
    """Injected: another publish holding the folder's lock past the timeout. Held: `PublishError`
    naming the folder and the lock; the folder is unchanged."""
    from tasks.publish.folder import folder_lock  # here: the other tests run without it

    out, old, new = published
    held = r"another publish .* still holds .*\.out\.lock"
    with folder_lock(out.resolve()), pytest.raises(PublishError, match=held):
        publish_to_local(tmp_path / "d4", new, local_dir=out, lock_timeout=0.2)
    assert _tree(out) == _expected(old)


def test_stale_temp_and_staging_files_are_cleaned(published, tmp_path: Path) -> None:
    """Injected: temp files of an older publish inside the folder and a half-built staging folder
    beside it. Held: a publish (even one with nothing to change) removes them all and keeps the
    dataset and unmanaged files."""
    out, old, _ = published
    (out / "data" / "ohlcv_1d" / ".2024.parquet.tmp").write_bytes(b"partial")
    (out / ".README.md.tmp").write_text("partial card")
    stage = tmp_path / ".out.stage-0123abcd" / "data" / "ohlcv_1d"
    stage.mkdir(parents=True)
    (stage / "2024.parquet").write_bytes(b"partial")
    (out / "NOTES.md").write_text("kept\n")
    report = publish_to_local(tmp_path / "d3", old, local_dir=out)
    assert not report.has_changes
    assert _leftovers(out) == []
    assert _tree(out) == {**_expected(old), "NOTES.md": b"kept\n"}


def test_a_dataset_moved_aside_by_a_killed_swap_is_restored(published, tmp_path: Path) -> None:
    """Injected: the state a kill leaves inside the two-rename fallback swap (the dataset moved to
    `.out.old-*`, no `out`). Held: the next publish restores it, then publishes onto it."""
    out, _, new = published
    (out / "NOTES.md").write_text("kept\n")
    out.rename(tmp_path / ".out.old-feedbeef")
    report = publish_to_local(tmp_path / "d4", new, local_dir=out)
    assert report.added == () and set(report.changed) >= {"README.md"}
    assert _tree(out) == {**_expected(new), "NOTES.md": b"kept\n"}
    assert _leftovers(out) == []


def test_the_fallback_swap_publishes_whole(
    published, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Injected: no atomic exchange available (renameat2 unsupported). Held: the two-rename swap
    publishes the new dataset whole and leaves nothing behind."""
    out, _, new = published
    monkeypatch.setattr("tasks.publish.folder._exchange", lambda a, b: False)
    publish_to_local(tmp_path / "d4", new, local_dir=out)
    assert _tree(out) == _expected(new)
    assert _leftovers(out) == []
