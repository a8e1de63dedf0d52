"""Publish the staged layout to a local dataset folder: same layout, only what changed."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from tasks.publish.diff import MANAGED_PREFIX, ChangePlan, RemoteFile, plan_changes
from tasks.publish.manifest import Manifest, check_staged, digest_file
from tasks.publish.report import PublishReport

log = logging.getLogger(__name__)


def publish_to_local(
    staging_dir: Path, manifest: Manifest, *, local_dir: Path, dry_run: bool = False
) -> PublishReport:
    """Copy new and changed files (by sha256) into `local_dir`, atomically, and drop stale data."""
    check_staged(staging_dir, manifest)
    plan = plan_changes(manifest, folder_state(local_dir, manifest))
    if not dry_run:
        apply_plan(plan, local_dir)
    log.info(
        "publish to %s: %d added, %d changed, %d deleted, %d unchanged%s",
        local_dir,
        len(plan.added),
        len(plan.changed),
        len(plan.deleted),
        len(plan.unchanged),
        " (dry run)" if dry_run else "",
    )
    return PublishReport.from_plan(str(local_dir), plan, dry_run=dry_run)


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


def apply_plan(plan: ChangePlan, local_dir: Path) -> None:
    """Write data files first and the card last, each by atomic rename; then delete stale files."""
    uploads = sorted(
        plan.uploads, key=lambda f: (not f.repo_path.startswith(MANAGED_PREFIX), f.repo_path)
    )
    for file in uploads:
        target = local_dir / file.repo_path
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(file.local_path, tmp)
        os.replace(tmp, target)
    for path in plan.deleted:
        (local_dir / path).unlink(missing_ok=True)
    _prune_empty(local_dir / MANAGED_PREFIX)


def _prune_empty(folder: Path) -> None:
    if not folder.is_dir():
        return
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        if not any(sub.iterdir()):
            sub.rmdir()
