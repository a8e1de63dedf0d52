"""Publish the staged layout to a local dataset folder: same layout, only what changed, as a set.

Under an exclusive lock, leftovers of an interrupted publish are cleaned up, the folder is read,
the shrink guard runs, and the next version is staged beside the folder and swapped in at once
(`tasks.publish.folder`): readers see the old dataset or the new one, never a mix.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.publish.diff import MANAGED_PREFIX, RemoteFile, plan_changes
from tasks.publish.folder import LOCK_TIMEOUT, folder_lock, recover, replace_folder
from tasks.publish.guard import check_shrink, require_data
from tasks.publish.manifest import Manifest, PublishError, check_staged, digest_file
from tasks.publish.report import PublishReport

log = logging.getLogger(__name__)


def publish_to_local(
    staging_dir: Path,
    manifest: Manifest,
    *,
    local_dir: Path,
    dry_run: bool = False,
    allow_shrink: bool = False,
    lock_timeout: float = LOCK_TIMEOUT,
) -> PublishReport:
    """Replace `local_dir` by the staged layout in one swap, keeping files it does not manage.

    Refuses (`PublishError`, nothing changed) a build with fewer files or rows than the folder
    holds for any config, unless `allow_shrink`. A dry run takes no lock and writes nothing.
    """
    target = str(local_dir)
    check_staged(staging_dir, manifest)
    require_data(manifest, target)
    folder = local_dir.resolve()
    if folder.exists() and not folder.is_dir():
        raise PublishError(f"publishing to {target} failed: it is not a folder")
    if dry_run:
        return _publish(folder, manifest, target, dry_run=True, allow_shrink=allow_shrink)
    try:
        with folder_lock(folder, lock_timeout):
            recover(folder)
            return _publish(folder, manifest, target, dry_run=False, allow_shrink=allow_shrink)
    except OSError as exc:
        raise PublishError(f"publishing to {target} failed: {exc}") from exc


def _publish(
    folder: Path, manifest: Manifest, target: str, *, dry_run: bool, allow_shrink: bool
) -> PublishReport:
    state = folder_state(folder, manifest)
    shrinks = check_shrink(
        manifest,
        state,
        lambda path: parquet_rows(folder / path),
        target=target,
        allow_shrink=allow_shrink,
    )
    plan = plan_changes(manifest, state)
    if not dry_run and not plan.is_empty:
        replace_folder(folder, {f.repo_path: f.local_path for f in plan.uploads}, set(plan.deleted))
    log.info(
        "publish to %s: %d added, %d changed, %d deleted, %d unchanged%s",
        target,
        len(plan.added),
        len(plan.changed),
        len(plan.deleted),
        len(plan.unchanged),
        " (dry run)" if dry_run else "",
    )
    return PublishReport.from_plan(
        target, plan, dry_run=dry_run, shrunk=tuple(s.describe() for s in shrinks)
    )


def parquet_rows(path: Path) -> int | None:
    """Rows in a Parquet file's footer (no data read); None if it is not readable Parquet."""
    try:
        return int(pq.read_metadata(path).num_rows)
    except pa.ArrowInvalid:
        return None


def folder_state(local_dir: Path, manifest: Manifest) -> dict[str, RemoteFile]:
    """The files of a dataset folder that the publish manages: manifest paths and all of `data/`.

    sha256 is computed only where the size matches the manifest (otherwise it differs anyway).
    """
    expected = manifest.by_path()
    paths = {p for p in expected if (local_dir / p).is_file()}
    data_dir = local_dir / MANAGED_PREFIX
    if data_dir.is_dir():
        paths |= {
            p.relative_to(local_dir).as_posix()
            for p in data_dir.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        }
    state: dict[str, RemoteFile] = {}
    for path in sorted(paths):
        size = (local_dir / path).stat().st_size
        wanted = expected.get(path)
        if wanted is not None and wanted.size == size:
            state[path] = RemoteFile(size=size, sha256=digest_file(local_dir / path).sha256)
        else:
            state[path] = RemoteFile(size=size)
    return state
