"""Publishing as the real Hub receives it: `*.parquet` in LFS mode, uploaded through git-LFS (the
publisher's default) or Xet (`upload="xet"`), the card inline.

Each test names what the fake Hub was made to do and what had to hold. The fake Hub answers the
upload mode from its `.gitattributes` as the Hub does, stores git-LFS uploads in a storage
stand-in that checks sha256 and size, and refuses an inline Parquet file or an LFS pointer to
nothing, so a publisher that only worked with "regular" answers fails here.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest
from huggingface_hub import constants
from pydantic import SecretStr

from tasks.publish import Manifest, PublishReport, publish_to_hub
from tests.fake_hub import FakeHub
from tests.fake_hub.state import lfs_pointer

REPO = "tester/crypto"
TOKEN = "hf_FakeHubSecretToken0123456789abcdef"  # the fake_hub fixture's token


def publish(hub: FakeHub, staging: Path, manifest: Manifest, **kwargs) -> PublishReport:
    return publish_to_hub(
        staging,
        manifest,
        repo_id=REPO,
        token=SecretStr(TOKEN),
        endpoint=hub.url,
        retry_delays=(0.1,),
        sleep=lambda _: None,
        **kwargs,
    )


def posts(hub: FakeHub, fragment: str) -> list:
    return [r for r in hub.requests if r.method in ("POST", "PUT") and fragment in r.path]


@pytest.fixture
def staged(make_silver, stage_dataset, tmp_path: Path) -> tuple[Path, Manifest]:
    return tmp_path / "d2", stage_dataset(make_silver(2), tmp_path / "d2")


def test_preupload_answers_lfs_for_parquet_and_regular_for_the_card(fake_hub: FakeHub) -> None:
    """Injected: a preupload of a small Parquet path, the card, and a large text file into a new
    repo. Held: the modes the real Hub answers (`.gitattributes` `*.parquet` → lfs; README →
    regular; 10 MiB or more → lfs), with `shouldIgnore` and a null `oid` for new paths."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    created = httpx.post(
        f"{fake_hub.url}/api/repos/create",
        json={"name": "crypto", "type": "dataset"},
        headers=headers,
    )
    assert created.status_code == 200
    sample = base64.b64encode(b"PAR1").decode()
    files = [
        {"path": "data/ohlcv_1d/2024.parquet", "sample": sample, "size": 4_000},
        {"path": "README.md", "sample": sample, "size": 2_000},
        {"path": "notes/big.csv", "sample": sample, "size": 11 * 1024 * 1024},
    ]
    answer = httpx.post(
        f"{fake_hub.url}/api/datasets/{REPO}/preupload/main",
        json={"files": files},
        headers=headers,
    ).json()
    modes = {f["path"]: (f["uploadMode"], f["shouldIgnore"], f["oid"]) for f in answer["files"]}
    assert modes == {
        "data/ohlcv_1d/2024.parquet": ("lfs", False, None),
        "README.md": ("regular", False, None),
        "notes/big.csv": ("lfs", False, None),
    }


def test_inline_parquet_and_dangling_pointer_are_refused(fake_hub: FakeHub) -> None:
    """Injected: commits sending a Parquet file inline (what a client told "regular" for every
    file would send), and an `lfsFile` line for an object never uploaded. Held: both refused
    with 400 as the real Hub refuses them, and no commit lands."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"}
    httpx.post(
        f"{fake_hub.url}/api/repos/create",
        json={"name": "crypto", "type": "dataset"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    header = json.dumps({"key": "header", "value": {"summary": "x", "description": ""}})
    inline = json.dumps(
        {
            "key": "file",
            "value": {
                "path": "data/a/2024.parquet",
                "content": base64.b64encode(b"PAR1").decode(),
                "encoding": "base64",
            },
        }
    )
    dangling = json.dumps(
        {
            "key": "lfsFile",
            "value": {"path": "data/a/2024.parquet", "algo": "sha256", "oid": "0" * 64, "size": 4},
        }
    )
    url = f"{fake_hub.url}/api/datasets/{REPO}/commit/main"
    for line, reason in ((inline, "binary files"), (dangling, "does not exist")):
        refused = httpx.post(url, content=f"{header}\n{line}\n", headers=headers)
        assert refused.status_code == 400 and reason in refused.text
    assert len(fake_hub.commits(REPO)) == 1  # the repo creation only


def test_git_lfs_publish_end_to_end(fake_hub: FakeHub, staged) -> None:
    """Injected: a first publish and an unchanged re-publish with the default upload path, the
    client's Xet left enabled. Held: the Parquet files go through the LFS batch API and a PUT of
    each to the storage stand-in (which checked sha256 and size), never through Xet; the tree holds
    LFS pointers whose sha256 are the manifest's, the card is a regular file; the re-publish makes
    no commit, no batch call and no upload; the client's Xet setting is restored afterwards."""
    staging, manifest = staged
    before = constants.HF_HUB_DISABLE_XET
    report = publish(fake_hub, staging, manifest)
    assert before == constants.HF_HUB_DISABLE_XET
    assert len(fake_hub.commits(REPO)) == 2 and report.commit_sha
    parquet = {f.repo_path: f for f in manifest.files if f.repo_path.endswith(".parquet")}
    assert fake_hub.lfs_paths(REPO) == {p: f.sha256 for p, f in parquet.items()}
    pointers = fake_hub.pointers(REPO)
    for path, entry in parquet.items():
        assert pointers[path] == lfs_pointer(entry.sha256, entry.size)
    files = fake_hub.files(REPO)
    assert all(files[p] == f.local_path.read_bytes() for p, f in manifest.by_path().items())
    assert "README.md" not in fake_hub.lfs_paths(REPO)
    assert len(posts(fake_hub, "/info/lfs/objects/batch")) == 1
    assert len(posts(fake_hub, "/lfs-storage/")) == len(parquet)
    assert not [r for r in fake_hub.requests if "xet" in r.path] and not fake_hub.xet_requests

    requests_before = len(fake_hub.requests)
    again = publish(fake_hub, staging, manifest)
    assert not again.has_changes and again.commit_sha is None
    later = fake_hub.requests[requests_before:]
    assert not [r for r in later if r.method in ("POST", "PUT") and "/repos/create" not in r.path]
    assert len(fake_hub.commits(REPO)) == 2


def test_git_lfs_increment_uploads_only_changed_objects(
    fake_hub: FakeHub, staged, make_silver, stage_dataset, tmp_path: Path
) -> None:
    """Injected: a publish of two days, then of three. Held: the second commit re-points only
    the changed files, and the storage stand-in receives only their bytes."""
    staging, manifest = staged
    publish(fake_hub, staging, manifest)
    first = fake_hub.lfs_paths(REPO)
    puts_before = len(posts(fake_hub, "/lfs-storage/"))
    bigger = stage_dataset(make_silver(3), tmp_path / "d3")
    report = publish(fake_hub, tmp_path / "d3", bigger)
    after = fake_hub.lfs_paths(REPO)
    changed = {p for p in after if after[p] != first.get(p)}
    assert changed == {p for p in (*report.changed, *report.added) if p.endswith(".parquet")}
    assert len(posts(fake_hub, "/lfs-storage/")) - puts_before == len(changed)


def test_xet_path_as_far_as_offline(fake_hub: FakeHub, staged) -> None:
    """Injected: a publish with `upload="xet"` (hf_xet installed), then an unchanged one. Held:
    the client fetched a write token from `xet-write-token/main`, uploaded xorbs and a shard to
    the CAS stand-in with that token (never the Hub token), made one commit whose LFS pointers
    carry the manifest's sha256; the re-publish made no commit and no CAS upload."""
    pytest.importorskip("hf_xet")
    staging, manifest = staged
    report = publish(fake_hub, staging, manifest, upload="xet")
    assert len(fake_hub.commits(REPO)) == 2 and report.commit_sha
    tokens = [r for r in fake_hub.requests if r.path.endswith("/xet-write-token/main")]
    assert tokens and all(r.authorized and r.status == 200 for r in tokens)
    uploads = [r for r in fake_hub.xet_requests if r.method == "POST"]
    assert any("/xorbs/" in r.path for r in uploads) and any("/shards" in r.path for r in uploads)
    assert all(r.authorized for r in fake_hub.xet_requests)
    assert not posts(fake_hub, "/info/lfs/objects/batch")
    parquet = {f.repo_path: f.sha256 for f in manifest.files if f.repo_path.endswith(".parquet")}
    assert fake_hub.lfs_paths(REPO) == parquet

    cas_before = len(fake_hub.xet_requests)
    assert not publish(fake_hub, staging, manifest, upload="xet").has_changes
    assert len(fake_hub.commits(REPO)) == 2
    assert not [r for r in fake_hub.xet_requests[cas_before:] if r.method == "POST"]


def test_unknown_upload_path_is_refused(fake_hub: FakeHub, staged) -> None:
    """Injected: `upload="s3"`. Held: ValueError before any request."""
    staging, manifest = staged
    with pytest.raises(ValueError, match="upload must be one of"):
        publish(fake_hub, staging, manifest, upload="s3")
    assert fake_hub.requests == []
