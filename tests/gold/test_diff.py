"""The change plan: what to upload and delete, compared by git sha1 or sha256."""

from __future__ import annotations

from pathlib import Path

from tasks.publish.diff import RemoteFile, plan_changes
from tasks.publish.manifest import Manifest, ManifestFile, git_blob_sha1


def _file(path: str, content: bytes) -> ManifestFile:
    import hashlib

    return ManifestFile(
        repo_path=path,
        local_path=Path("/staging") / path,
        sha256=hashlib.sha256(content).hexdigest(),
        git_sha1=git_blob_sha1(content),
        size=len(content),
        rows=1,
        config=path.split("/")[1] if path.startswith("data/") else None,
    )


def test_git_blob_sha1_matches_git() -> None:
    # `printf 'hello\n' | git hash-object --stdin`
    assert git_blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_plan_compares_regular_by_git_sha1_and_lfs_by_sha256() -> None:
    same_regular = _file("data/a/2024.parquet", b"aaa")
    same_lfs = _file("data/b/2024.parquet", b"bbb")
    edited = _file("data/c/2024.parquet", b"ccc")
    new = _file("README.md", b"card")
    manifest = Manifest(files=(same_regular, same_lfs, edited, new), configs=())
    remote = {
        ".gitattributes": RemoteFile(size=10, git_sha1="x"),
        "NOTES.md": RemoteFile(size=3, git_sha1="y"),
        "data/a/2024.parquet": RemoteFile(size=3, git_sha1=same_regular.git_sha1),
        "data/b/2024.parquet": RemoteFile(size=3, sha256=same_lfs.sha256, git_sha1="pointer"),
        "data/c/2024.parquet": RemoteFile(size=3, git_sha1=git_blob_sha1(b"old")),
        "data/gone/2023.parquet": RemoteFile(size=5, git_sha1="z"),
    }
    plan = plan_changes(manifest, remote)
    assert [f.repo_path for f in plan.added] == ["README.md"]
    assert [f.repo_path for f in plan.changed] == ["data/c/2024.parquet"]
    assert plan.deleted == ("data/gone/2023.parquet",)
    assert plan.unchanged == ("data/a/2024.parquet", "data/b/2024.parquet")
    assert plan.upload_bytes == len(b"card") + 3


def test_same_hash_but_other_size_is_a_change() -> None:
    local = _file("data/a/2024.parquet", b"aaa")
    remote = {"data/a/2024.parquet": RemoteFile(size=4, sha256=local.sha256)}
    plan = plan_changes(Manifest(files=(local,), configs=()), remote)
    assert plan.changed == (local,)


def test_identical_target_gives_an_empty_plan() -> None:
    local = _file("data/a/2024.parquet", b"aaa")
    remote = {local.repo_path: RemoteFile(size=3, sha256=local.sha256)}
    plan = plan_changes(Manifest(files=(local,), configs=()), remote)
    assert plan.is_empty and plan.upload_bytes == 0
