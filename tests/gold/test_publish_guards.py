"""Publish guards (issue 15 case 2): no publish empties or shrinks a dataset by accident."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from pydantic import SecretStr

from tasks.publish import Manifest, PublishError, PublishReport, publish_to_hub, publish_to_local
from tests.fake_hub import FakeHub
from tests.gold.conftest import TOKEN

REPO = "tester/crypto"
ONE_DAY_DIFF = (
    "ohlcv_1m: files 2 -> 1, rows 38,880 -> 12,960",
    "ohlcv_1d: files 2 -> 1, rows 27 -> 9",
    "funding: files 2 -> 1, rows 54 -> 18",
)


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def _empty(silver: dict[str, pl.LazyFrame]) -> dict[str, pl.LazyFrame]:
    """What a missing or mistyped warehouse scans as: every dataset, no rows."""
    return {name: frame.head(0) for name, frame in silver.items()}


def _without_sol(silver: dict[str, pl.LazyFrame]) -> dict[str, pl.LazyFrame]:
    """Candles per exchange lose one symbol; same files, fewer rows."""
    return {**silver, "ohlcv": silver["ohlcv"].filter(pl.col("symbol") != "SOLUSDT")}


def _to_hub(hub: FakeHub, staging: Path, manifest: Manifest, **kwargs: bool) -> PublishReport:
    return publish_to_hub(
        staging, manifest, repo_id=REPO, token=SecretStr(TOKEN), endpoint=hub.url, **kwargs
    )


def _card_only(staging: Path) -> Manifest:
    """A build that holds the card and no data file."""
    staging.mkdir(exist_ok=True)
    return Manifest(files=(), configs=()).with_card(staging, "---\nconfigs: []\n---\n")


def test_empty_warehouse_never_empties_the_local_folder(
    make_silver, stage_dataset, tmp_path: Path
) -> None:
    """Injected: after a good publish, a publish from an empty silver warehouse, then a build
    holding only the card. Held: both refused with `PublishError`; every published file kept."""
    out = tmp_path / "out"
    publish_to_local(
        tmp_path / "good", stage_dataset(make_silver(3), tmp_path / "good"), local_dir=out
    )
    before = _tree(out)
    with pytest.raises(PublishError, match="no rows"):
        manifest = stage_dataset(_empty(make_silver(3)), tmp_path / "empty")
        publish_to_local(tmp_path / "empty", manifest, local_dir=out)
    with pytest.raises(PublishError, match="no data files"):
        publish_to_local(tmp_path / "card", _card_only(tmp_path / "card"), local_dir=out)
    with pytest.raises(PublishError, match="no data files"):
        publish_to_local(
            tmp_path / "card", _card_only(tmp_path / "card"), local_dir=out, allow_shrink=True
        )
    assert _tree(out) == before


def test_empty_warehouse_never_empties_the_hub_repo(
    fake_hub: FakeHub, make_silver, stage_dataset, tmp_path: Path
) -> None:
    """Injected: after a good Hub publish, a publish from an empty silver warehouse and one of
    a card-only build. Held: both refused; no new commit; every published file kept."""
    _to_hub(fake_hub, tmp_path / "good", stage_dataset(make_silver(3), tmp_path / "good"))
    before, commits = fake_hub.files(REPO), len(fake_hub.commits(REPO))
    with pytest.raises(PublishError, match="no rows"):
        manifest = stage_dataset(_empty(make_silver(3)), tmp_path / "empty")
        _to_hub(fake_hub, tmp_path / "empty", manifest)
    with pytest.raises(PublishError, match="no data files"):
        _to_hub(fake_hub, tmp_path / "card", _card_only(tmp_path / "card"))
    assert fake_hub.files(REPO) == before and len(fake_hub.commits(REPO)) == commits


def test_fewer_days_are_refused_locally_with_the_diff(
    make_silver, stage_dataset, tmp_path: Path
) -> None:
    """Injected: a 1-day build over a published 3-day folder (a run on a fresh warehouse).
    Held: refused, the message lists files and rows before/after per config, nothing changed;
    with allow_shrink it publishes and the report names the shrunk configs."""
    out = tmp_path / "out"
    publish_to_local(tmp_path / "d3", stage_dataset(make_silver(3), tmp_path / "d3"), local_dir=out)
    before = _tree(out)
    small = stage_dataset(make_silver(1), tmp_path / "d1")
    for dry_run in (True, False):
        with pytest.raises(PublishError) as refused:
            publish_to_local(tmp_path / "d1", small, local_dir=out, dry_run=dry_run)
        for line in ONE_DAY_DIFF:
            assert line in str(refused.value)
        assert "allow-shrink" in str(refused.value) and str(out) in str(refused.value)
    assert _tree(out) == before
    report = publish_to_local(tmp_path / "d1", small, local_dir=out, allow_shrink=True)
    assert "ohlcv_1m: files 2 -> 1, rows 38,880 -> 12,960" in report.shrunk
    assert "Shrunk on purpose" in report.to_markdown()
    assert _tree(out) == {f.repo_path: f.local_path.read_bytes() for f in small.files}


def test_fewer_rows_in_the_same_files_are_refused(
    make_silver, stage_dataset, tmp_path: Path
) -> None:
    """Injected: a build that lost one symbol of candles (same files, fewer rows), over a good
    publish. Held: refused naming only the shrunk configs; folder unchanged."""
    out = tmp_path / "out"
    publish_to_local(tmp_path / "a", stage_dataset(make_silver(3), tmp_path / "a"), local_dir=out)
    before = _tree(out)
    smaller = stage_dataset(_without_sol(make_silver(3)), tmp_path / "b")
    with pytest.raises(PublishError) as refused:
        publish_to_local(tmp_path / "b", smaller, local_dir=out)
    message = str(refused.value)
    assert "ohlcv_1d: files 2 -> 2, rows 27 -> 18" in message
    assert "ohlcv_aggregated" not in message and "funding" not in message
    assert _tree(out) == before


def test_fewer_days_are_refused_on_the_hub_with_the_diff(
    fake_hub: FakeHub, make_silver, stage_dataset, tmp_path: Path
) -> None:
    """Injected: a 1-day build over a published 3-day Hub repo. Held: refused with the per-config
    diff (rows of the replaced files read from their Parquet footers on the Hub), no commit;
    with allow_shrink one commit lands and the report names the shrunk configs."""
    _to_hub(fake_hub, tmp_path / "d3", stage_dataset(make_silver(3), tmp_path / "d3"))
    before, commits = fake_hub.files(REPO), len(fake_hub.commits(REPO))
    small = stage_dataset(make_silver(1), tmp_path / "d1")
    with pytest.raises(PublishError) as refused:
        _to_hub(fake_hub, tmp_path / "d1", small)
    for line in ONE_DAY_DIFF:
        assert line in str(refused.value)
    assert fake_hub.files(REPO) == before and len(fake_hub.commits(REPO)) == commits
    assert TOKEN not in str(refused.value)
    report = _to_hub(fake_hub, tmp_path / "d1", small, allow_shrink=True)
    assert len(fake_hub.commits(REPO)) == commits + 1
    assert "funding: files 2 -> 1, rows 54 -> 18" in report.shrunk


def test_growth_needs_no_permission(
    fake_hub: FakeHub, make_silver, stage_dataset, tmp_path: Path
) -> None:
    """Injected: a 4-day build over a 3-day publish, on the Hub and locally. Held: published
    without allow_shrink, nothing reported as shrunk."""
    three, four = tmp_path / "d3", tmp_path / "d4"
    first, second = stage_dataset(make_silver(3), three), stage_dataset(make_silver(4), four)
    _to_hub(fake_hub, three, first)
    assert _to_hub(fake_hub, four, second).shrunk == ()
    publish_to_local(three, first, local_dir=tmp_path / "out")
    assert publish_to_local(four, second, local_dir=tmp_path / "out").shrunk == ()
