"""Which published files to add, replace or delete: a pure comparison of manifest and target."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tasks.publish.manifest import Manifest, ManifestFile

MANAGED_PREFIX = "data/"


@dataclass(frozen=True)
class RemoteFile:
    """What the target holds at a path: sha256 when known (LFS/Xet, local), else the git blob id."""

    size: int
    sha256: str | None = None
    git_sha1: str | None = None


@dataclass(frozen=True)
class ChangePlan:
    added: tuple[ManifestFile, ...]
    changed: tuple[ManifestFile, ...]
    deleted: tuple[str, ...]
    unchanged: tuple[str, ...]

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.changed or self.deleted)

    @property
    def uploads(self) -> tuple[ManifestFile, ...]:
        return tuple(sorted((*self.added, *self.changed), key=lambda f: f.repo_path))

    @property
    def upload_bytes(self) -> int:
        return sum(f.size for f in self.uploads)


def same_content(local: ManifestFile, remote: RemoteFile) -> bool:
    if remote.size != local.size:
        return False
    if remote.sha256 is not None:
        return remote.sha256 == local.sha256
    return remote.git_sha1 is not None and remote.git_sha1 == local.git_sha1


def plan_changes(manifest: Manifest, remote: Mapping[str, RemoteFile]) -> ChangePlan:
    """Files new or different on the target, and target files under `data/` no longer produced.

    Files outside `data/` that the manifest does not list (e.g. `.gitattributes`) are left alone.
    """
    added: list[ManifestFile] = []
    changed: list[ManifestFile] = []
    unchanged: list[str] = []
    for file in sorted(manifest.files, key=lambda f: f.repo_path):
        current = remote.get(file.repo_path)
        if current is None:
            added.append(file)
        elif same_content(file, current):
            unchanged.append(file.repo_path)
        else:
            changed.append(file)
    produced = {f.repo_path for f in manifest.files}
    deleted = sorted(p for p in remote if p.startswith(MANAGED_PREFIX) and p not in produced)
    return ChangePlan(tuple(added), tuple(changed), tuple(deleted), tuple(unchanged))
