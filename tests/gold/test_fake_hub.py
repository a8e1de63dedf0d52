"""The fake Hub itself: auth, errors, ranges and downloads as the real client sees them."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, HfFileSystem
from huggingface_hub.errors import HfHubHTTPError, RemoteEntryNotFoundError

from tests.fake_hub import FakeHub

REPO = "tester/probe"


@pytest.fixture
def api(fake_hub: FakeHub, hub_token: str) -> HfApi:
    client = HfApi(endpoint=fake_hub.url, token=hub_token)
    client.create_repo(REPO, repo_type="dataset")
    client.create_commit(
        REPO,
        [CommitOperationAdd("data/x/a.bin", bytes(range(256)) * 4)],
        commit_message="seed",
        repo_type="dataset",
    )
    return client


def test_writes_need_the_token(fake_hub: FakeHub, api: HfApi) -> None:
    anonymous = HfApi(endpoint=fake_hub.url, token=False)
    with pytest.raises(HfHubHTTPError) as missing:
        anonymous.create_repo("tester/other", repo_type="dataset")
    assert missing.value.response.status_code == 401
    wrong = HfApi(endpoint=fake_hub.url, token="hf_not_it")
    with pytest.raises(HfHubHTTPError) as bad:
        wrong.repo_info(REPO, repo_type="dataset")
    assert bad.value.response.status_code == 401
    assert anonymous.repo_info(REPO, repo_type="dataset").sha == fake_hub.commits(REPO)[-1].oid


def test_existing_repo_answers_409_with_url(api: HfApi, fake_hub: FakeHub) -> None:
    url = api.create_repo(REPO, repo_type="dataset", exist_ok=True)
    assert str(url) == f"{fake_hub.url}/datasets/{REPO}"
    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_repo(REPO, repo_type="dataset")
    assert conflict.value.response.status_code == 409


def test_invalid_card_yaml_is_refused_before_upload(api: HfApi, fake_hub: FakeHub) -> None:
    commits = len(fake_hub.commits(REPO))
    with pytest.raises((ValueError, HfHubHTTPError)):
        api.create_commit(
            REPO,
            [CommitOperationAdd("README.md", b"---\nconfigs: [unclosed\n---\n")],
            commit_message="bad card",
            repo_type="dataset",
        )
    assert len(fake_hub.commits(REPO)) == commits


def test_deleting_a_missing_file_is_entry_not_found(api: HfApi) -> None:
    with pytest.raises(RemoteEntryNotFoundError):
        api.create_commit(
            REPO,
            [CommitOperationDelete("data/x/missing.bin")],
            commit_message="delete",
            repo_type="dataset",
        )


def test_resolve_serves_ranges_and_headers(api: HfApi, fake_hub: FakeHub) -> None:
    head = fake_hub.commits(REPO)[-1].oid
    url = f"{fake_hub.url}/datasets/{REPO}/resolve/main/data/x/a.bin"
    request = urllib.request.Request(url, headers={"Range": "bytes=10-19"})
    with urllib.request.urlopen(request) as response:
        assert response.status == 206
        assert response.read() == bytes(range(10, 20))
        assert response.headers["X-Repo-Commit"] == head
        assert response.headers["Content-Range"] == "bytes 10-19/1024"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{fake_hub.url}/datasets/{REPO}/resolve/main/nope.bin")
    assert missing.value.code == 404
    assert missing.value.headers["X-Error-Code"] == "EntryNotFound"


def test_filesystem_reads_through_the_fake(api: HfApi, fake_hub: FakeHub) -> None:
    fs = HfFileSystem(endpoint=fake_hub.url, token=False, skip_instance_cache=True)
    assert fs.ls(f"datasets/{REPO}/data/x", detail=False) == [f"datasets/{REPO}/data/x/a.bin"]
    with fs.open(f"datasets/{REPO}/data/x/a.bin", "rb") as handle:
        handle.seek(1000)
        assert handle.read(4) == bytes(range(232, 236))


def test_unknown_fault_is_named(fake_hub: FakeHub) -> None:
    with pytest.raises(ValueError, match="unknown fault 'teapot'"):
        fake_hub.inject("teapot")  # type: ignore[arg-type]
