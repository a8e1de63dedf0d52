"""Publishing to the (fake) Hub with the real huggingface_hub client: one commit per change."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import RepositoryNotFoundError
from pydantic import SecretStr

from tasks.publish import Manifest, PublishError, PublishReport, publish_to_hub
from tests.fake_hub import FakeHub

REPO = "tester/crypto"
TOKEN = "hf_FakeHubSecretToken0123456789abcdef"  # the fake_hub fixture's token
CHANGED_BY_NEW_DAY = {
    "README.md",
    "data/funding/2024.parquet",
    "data/ohlcv_1d/2024.parquet",
    "data/ohlcv_1h/2024.parquet",
    "data/ohlcv_1m/2024-01.parquet",
    "data/ohlcv_aggregated_1d/2024.parquet",
    "data/ohlcv_aggregated_1h/2024.parquet",
    "data/ohlcv_aggregated_1m/2024-01.parquet",
    "data/open_interest/2024.parquet",
}


def publish(hub: FakeHub, staging: Path, manifest: Manifest, **kwargs) -> PublishReport:
    sleeps: list[float] = []
    return publish_to_hub(
        staging,
        manifest,
        repo_id=REPO,
        token=SecretStr(TOKEN),
        endpoint=hub.url,
        retry_delays=(0.5, 1.0),
        sleep=sleeps.append,
        **kwargs,
    )


def publishes(hub: FakeHub) -> list:
    """Commits after the repo-creation commit."""
    return hub.commits(REPO)[1:]


def commit_posts(hub: FakeHub) -> list:
    return [r for r in hub.requests if r.method == "POST" and "/commit/" in r.path]


def assert_hub_matches(hub: FakeHub, manifest: Manifest) -> None:
    files = hub.files(REPO)
    for entry in manifest.files:
        assert files[entry.repo_path] == entry.local_path.read_bytes(), entry.repo_path
    data = {p for p in files if p.startswith("data/")}
    assert data == {f.repo_path for f in manifest.files if f.repo_path.startswith("data/")}


@pytest.fixture
def three_days(make_silver, stage_dataset, tmp_path: Path) -> tuple[Path, Manifest]:
    return tmp_path / "d3", stage_dataset(make_silver(3), tmp_path / "d3")


def test_first_publish_is_one_commit(fake_hub: FakeHub, three_days) -> None:
    staging, manifest = three_days
    report = publish(fake_hub, staging, manifest)
    assert len(publishes(fake_hub)) == 1
    head = fake_hub.commits(REPO)[-1]
    assert report.commit_sha == head.oid and head.oid in (report.commit_url or "")
    assert len(report.added) == len(manifest.files) == 19
    assert report.changed == () and report.deleted == () and report.unchanged == 0
    assert report.bytes_uploaded == manifest.total_size
    assert_hub_matches(fake_hub, manifest)
    assert ".gitattributes" in fake_hub.files(REPO)


def test_unchanged_republish_commits_nothing(fake_hub: FakeHub, three_days) -> None:
    staging, manifest = three_days
    publish(fake_hub, staging, manifest)
    posts_before = len(commit_posts(fake_hub))
    report = publish(fake_hub, staging, manifest)
    assert len(publishes(fake_hub)) == 1
    assert len(commit_posts(fake_hub)) == posts_before
    assert not report.has_changes and report.unchanged == 19
    assert report.bytes_uploaded == 0 and report.commit_sha is None and report.commit_url is None
    assert "nothing to publish" in report.to_markdown()


def test_daily_increment_uploads_only_changed_files(
    fake_hub: FakeHub, three_days, make_silver, stage_dataset, tmp_path: Path
) -> None:
    staging, manifest = three_days
    publish(fake_hub, staging, manifest)
    first = fake_hub.files(REPO)
    next_manifest = stage_dataset(make_silver(4), tmp_path / "d4")
    report = publish(fake_hub, tmp_path / "d4", next_manifest)
    assert len(publishes(fake_hub)) == 2
    assert set(report.changed) == CHANGED_BY_NEW_DAY
    assert report.added == () and report.deleted == () and report.unchanged == 10
    sizes = next_manifest.by_path()
    assert report.bytes_uploaded == sum(sizes[p].size for p in CHANGED_BY_NEW_DAY)
    parquet = [f for f in next_manifest.files if f.repo_path.endswith(".parquet")]
    changed_parquet = sum(f.size for f in parquet if f.repo_path in CHANGED_BY_NEW_DAY)
    assert changed_parquet < sum(f.size for f in parquet) / 2
    after = fake_hub.files(REPO)
    for path in set(first) - CHANGED_BY_NEW_DAY:
        assert after[path] == first[path], path
    assert_hub_matches(fake_hub, next_manifest)


def test_removed_config_is_deleted_in_the_same_commit(
    fake_hub: FakeHub, three_days, make_silver, stage_dataset, tmp_path: Path
) -> None:
    staging, manifest = three_days
    publish(fake_hub, staging, manifest)
    silver = make_silver(3)
    del silver["funding"]
    smaller = stage_dataset(silver, tmp_path / "nofunding")
    report = publish(fake_hub, tmp_path / "nofunding", smaller, allow_shrink=True)
    assert len(publishes(fake_hub)) == 2
    assert report.shrunk == ("funding: files 2 -> 0, rows 54 -> 0 (config no longer built)",)
    assert report.deleted == ("data/funding/2023.parquet", "data/funding/2024.parquet")
    assert report.changed == ("README.md",) and report.added == ()
    assert not any(p.startswith("data/funding/") for p in fake_hub.files(REPO))
    assert "config_name: funding" not in fake_hub.files(REPO)["README.md"].decode()


@pytest.mark.parametrize("fault", ["429-before", "429-after", "500-after"])
def test_transient_commit_errors_never_duplicate(fake_hub: FakeHub, three_days, fault) -> None:
    staging, manifest = three_days
    fake_hub.inject(fault)  # type: ignore[arg-type]
    report = publish(fake_hub, staging, manifest)
    assert len(publishes(fake_hub)) == 1
    assert report.commit_sha == fake_hub.commits(REPO)[-1].oid
    assert len(report.added) == 19
    expected_posts = 2 if fault == "429-before" else 1  # landed: checked, not re-sent
    assert len(commit_posts(fake_hub)) == expected_posts
    assert_hub_matches(fake_hub, manifest)


def test_stale_parent_412_is_rediffed_and_retried(fake_hub: FakeHub, three_days) -> None:
    staging, manifest = three_days
    fake_hub.inject("412")
    report = publish(fake_hub, staging, manifest)
    assert len(publishes(fake_hub)) == 1 and len(commit_posts(fake_hub)) == 2
    assert report.commit_sha == fake_hub.commits(REPO)[-1].oid


def test_concurrent_writer_keeps_its_file(fake_hub: FakeHub, three_days) -> None:
    staging, manifest = three_days
    fake_hub.inject("foreign-commit")
    report = publish(fake_hub, staging, manifest)
    titles = [c.title for c in publishes(fake_hub)]
    assert titles == ["Edit notes", "Publish dataset: 19 added, 0 changed, 0 deleted"]
    assert report.commit_sha == fake_hub.commits(REPO)[-1].oid
    assert "NOTES.md" in fake_hub.files(REPO)
    assert_hub_matches(fake_hub, manifest)


def test_persistent_rate_limit_fails_with_a_named_error(fake_hub: FakeHub, three_days) -> None:
    staging, manifest = three_days
    fake_hub.inject("429-before", times=3)
    with pytest.raises(PublishError, match=f"publishing to {REPO} failed.*429") as info:
        publish(fake_hub, staging, manifest)
    assert TOKEN not in str(info.value)
    assert publishes(fake_hub) == []


def test_dry_run_writes_nothing(fake_hub: FakeHub, three_days) -> None:
    staging, manifest = three_days
    report = publish(fake_hub, staging, manifest, dry_run=True)
    assert report.dry_run and len(report.added) == 19 and report.bytes_uploaded == 0
    with pytest.raises(KeyError):
        fake_hub.commits(REPO)  # the repo was not even created
    assert "dry run" in report.to_markdown()
    publish(fake_hub, staging, manifest)
    assert not publish(fake_hub, staging, manifest, dry_run=True).has_changes


def test_private_repo_is_hidden_from_anonymous_readers(fake_hub: FakeHub, three_days) -> None:
    staging, manifest = three_days
    publish(fake_hub, staging, manifest, private=True)
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=fake_hub.url, token=False).repo_info(REPO, repo_type="dataset")


def test_paginated_tree_listing(make_silver, stage_dataset, tmp_path: Path, monkeypatch) -> None:
    manifest = stage_dataset(make_silver(3), tmp_path)
    with FakeHub(token=TOKEN, page_size=4) as hub:
        monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", hub.url)
        publish(hub, tmp_path, manifest)
        assert not publish(hub, tmp_path, manifest).has_changes
        assert any("cursor=" in r.path for r in hub.requests)
        assert len(publishes(hub)) == 1


def test_token_never_leaks(
    fake_hub: FakeHub, three_days, make_silver, stage_dataset, tmp_path: Path, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    staging, manifest = three_days
    fake_hub.inject("429-after")
    reports = [publish(fake_hub, staging, manifest)]
    reports.append(
        publish(fake_hub, tmp_path / "d4", stage_dataset(make_silver(4), tmp_path / "d4"))
    )
    reports.append(publish(fake_hub, staging, manifest, dry_run=True, allow_shrink=True))
    with pytest.raises(PublishError) as wrong:
        publish_to_hub(
            staging,
            manifest,
            repo_id=REPO,
            token=SecretStr("hf_WrongToken42"),
            endpoint=fake_hub.url,
        )
    assert "401" in str(wrong.value) and "HF_TOKEN" in str(wrong.value)
    assert "hf_WrongToken42" not in str(wrong.value)
    texts = [caplog.text, str(wrong.value), repr(wrong.value)]
    texts += [repr(r) for r in reports] + [r.to_markdown() for r in reports]
    assert "publish to tester/crypto" in caplog.text
    for text in texts:
        assert TOKEN not in text
        assert TOKEN[3:] not in text
    assert all(TOKEN not in r.path for r in fake_hub.requests)
    writes = [r for r in fake_hub.requests if r.method == "POST"]
    assert writes and all(r.authorized for r in writes)


def test_a_branch_that_keeps_moving_fails_by_name(fake_hub: FakeHub, three_days) -> None:
    staging, manifest = three_days
    fake_hub.inject("412", times=3)
    with pytest.raises(PublishError, match=f"publishing to {REPO} failed: the branch kept moving"):
        publish(fake_hub, staging, manifest)
    assert publishes(fake_hub) == []


def test_custom_commit_message(fake_hub: FakeHub, three_days) -> None:
    staging, manifest = three_days
    publish(fake_hub, staging, manifest, commit_message="Daily update 2024-01-01")
    assert [c.title for c in publishes(fake_hub)] == ["Daily update 2024-01-01"]
