"""Publishing to a local dataset folder: same layout, only what changed, atomic replacement."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks.publish import PublishError, publish_to_local


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_first_publish_copies_the_layout(make_silver, stage_dataset, tmp_path: Path) -> None:
    manifest = stage_dataset(make_silver(3), tmp_path / "stage", repo_id=None)
    report = publish_to_local(tmp_path / "stage", manifest, local_dir=tmp_path / "out")
    assert len(report.added) == 19 and report.bytes_uploaded == manifest.total_size
    assert report.commit_sha is None and report.commit_url is None
    assert _tree(tmp_path / "out") == {
        f.repo_path: f.local_path.read_bytes() for f in manifest.files
    }
    assert report.target == str(tmp_path / "out")


def test_republish_and_increment_touch_only_changed_files(
    make_silver, stage_dataset, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = stage_dataset(make_silver(3), tmp_path / "d3", repo_id=None)
    publish_to_local(tmp_path / "d3", first, local_dir=out)
    inodes = {p: os.stat(out / p).st_ino for p in _tree(out)}
    again = publish_to_local(tmp_path / "d3", first, local_dir=out)
    assert not again.has_changes and again.unchanged == 19 and again.bytes_uploaded == 0
    assert {p: os.stat(out / p).st_ino for p in _tree(out)} == inodes

    second = stage_dataset(make_silver(4), tmp_path / "d4", repo_id=None)
    report = publish_to_local(tmp_path / "d4", second, local_dir=out)
    assert report.added == () and report.deleted == () and report.unchanged == 10
    assert "data/ohlcv_1m/2024-01.parquet" in report.changed
    for path, inode in inodes.items():
        replaced = os.stat(out / path).st_ino != inode
        assert replaced == (path in report.changed), path
    assert _tree(out) == {f.repo_path: f.local_path.read_bytes() for f in second.files}


def test_stale_data_files_are_deleted_and_others_kept(
    make_silver, stage_dataset, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    publish_to_local(tmp_path / "a", stage_dataset(make_silver(3), tmp_path / "a"), local_dir=out)
    (out / "NOTES.md").write_text("kept: not managed by the publish\n")
    (out / "data" / "old_config").mkdir()
    (out / "data" / "old_config" / "2020.parquet").write_bytes(b"stale")
    silver = make_silver(3)
    del silver["open_interest"]
    report = publish_to_local(
        tmp_path / "b", stage_dataset(silver, tmp_path / "b"), local_dir=out, allow_shrink=True
    )
    assert set(report.deleted) == {
        "data/old_config/2020.parquet",
        "data/open_interest/2023.parquet",
        "data/open_interest/2024.parquet",
    }
    assert not (out / "data" / "open_interest").exists()
    assert not (out / "data" / "old_config").exists()
    assert (out / "NOTES.md").exists()
    assert not list(out.rglob(".*.tmp"))


def test_dry_run_writes_nothing(make_silver, stage_dataset, tmp_path: Path) -> None:
    manifest = stage_dataset(make_silver(2), tmp_path / "stage")
    report = publish_to_local(
        tmp_path / "stage", manifest, local_dir=tmp_path / "out", dry_run=True
    )
    assert report.dry_run and len(report.added) == len(manifest.files)
    assert report.bytes_uploaded == 0
    assert not (tmp_path / "out").exists()


def test_a_corrupted_copy_is_replaced(make_silver, stage_dataset, tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifest = stage_dataset(make_silver(2), tmp_path / "stage")
    publish_to_local(tmp_path / "stage", manifest, local_dir=out)
    victim = out / "data" / "ohlcv_1d" / "2023.parquet"
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF  # same size, different content: caught by sha256
    victim.write_bytes(bytes(data))
    report = publish_to_local(tmp_path / "stage", manifest, local_dir=out)
    assert report.changed == ("data/ohlcv_1d/2023.parquet",)
    assert victim.read_bytes() == (tmp_path / "stage" / "data/ohlcv_1d/2023.parquet").read_bytes()


def test_missing_staged_file_is_named(make_silver, stage_dataset, tmp_path: Path) -> None:
    manifest = stage_dataset(make_silver(1), tmp_path / "stage")
    (tmp_path / "stage" / "data" / "funding" / "2023.parquet").unlink()
    with pytest.raises(PublishError, match=r"data/funding/2023.parquet is missing"):
        publish_to_local(tmp_path / "stage", manifest, local_dir=tmp_path / "out")
