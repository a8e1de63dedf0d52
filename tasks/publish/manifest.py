"""What a layout build produced: files with their hashes, and per-config stats for the card."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

CARD_PATH = "README.md"
_READ_CHUNK = 1 << 20


class PublishError(RuntimeError):
    """Publishing failed; the message names the target or file and the step."""


@dataclass(frozen=True)
class FileDigest:
    """Content identity of one file: sha256 (LFS/Xet oid), git blob sha1 (regular-file oid)."""

    sha256: str
    git_sha1: str
    size: int


@dataclass(frozen=True)
class ManifestFile:
    repo_path: str
    local_path: Path
    sha256: str
    git_sha1: str
    size: int
    rows: int | None
    config: str | None


@dataclass(frozen=True)
class ConfigStats:
    """One dataset config: what the card says about it."""

    config: str
    dataset: str
    interval: str | None
    files: int
    rows: int
    size: int
    ts_min: datetime | None
    ts_max: datetime | None
    exchanges: tuple[str, ...]
    symbols: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]

    @property
    def glob(self) -> str:
        return f"data/{self.config}/*.parquet"


@dataclass(frozen=True)
class Manifest:
    files: tuple[ManifestFile, ...]
    configs: tuple[ConfigStats, ...]

    @property
    def total_rows(self) -> int:
        return sum(c.rows for c in self.configs)

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    def by_path(self) -> dict[str, ManifestFile]:
        return {f.repo_path: f for f in self.files}

    def with_file(self, entry: ManifestFile) -> Manifest:
        """This manifest with `entry` added, replacing any file at the same repo path."""
        kept = tuple(f for f in self.files if f.repo_path != entry.repo_path)
        return replace(self, files=tuple(sorted((*kept, entry), key=lambda f: f.repo_path)))

    def with_card(self, staging_dir: Path, card_text: str) -> Manifest:
        """Write the dataset card into the staging folder and list it in the manifest."""
        path = staging_dir / CARD_PATH
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(card_text, encoding="utf-8")
        tmp.replace(path)
        return self.with_file(manifest_entry(staging_dir, CARD_PATH, rows=None, config=None))


def digest_file(path: Path) -> FileDigest:
    """sha256 and git blob sha1 of a file, read once in chunks."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    git_sha1 = hashlib.sha1(f"blob {size}\0".encode())
    with path.open("rb") as handle:
        while chunk := handle.read(_READ_CHUNK):
            sha256.update(chunk)
            git_sha1.update(chunk)
    return FileDigest(sha256=sha256.hexdigest(), git_sha1=git_sha1.hexdigest(), size=size)


def git_blob_sha1(content: bytes) -> str:
    """The git object id of a blob with this content."""
    return hashlib.sha1(f"blob {len(content)}\0".encode() + content).hexdigest()


def manifest_entry(
    staging_dir: Path, repo_path: str, *, rows: int | None, config: str | None
) -> ManifestFile:
    local_path = staging_dir / repo_path
    digest = digest_file(local_path)
    return ManifestFile(
        repo_path=repo_path,
        local_path=local_path,
        sha256=digest.sha256,
        git_sha1=digest.git_sha1,
        size=digest.size,
        rows=rows,
        config=config,
    )


def check_staged(staging_dir: Path, manifest: Manifest) -> None:
    """Every manifest file is present in the staging folder with the recorded size."""
    for file in manifest.files:
        path = staging_dir / file.repo_path
        if not path.is_file():
            raise PublishError(f"staged file {path} is missing")
        if path.stat().st_size != file.size:
            raise PublishError(f"staged file {path} changed since the manifest was built")
