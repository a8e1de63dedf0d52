"""Publish guards: a build never replaces the published dataset with an empty or smaller one.

Per config (the `data/{config}/*.parquet` files), the build's file and row counts are compared
with the target's. The target's rows come from the manifest wherever a target file has the
content of the built file at the same path (same bytes, same rows), and from the Parquet footer
of every other target file (the ones the publish would replace or delete), read with `rows_of`.
So an ordinary increment reads no footer at all for unchanged files, and only the few replaced
files' footers otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tasks.publish.diff import MANAGED_PREFIX, RemoteFile, same_content
from tasks.publish.manifest import Manifest, PublishError

log = logging.getLogger(__name__)

RowCounter = Callable[[str], int | None]
"""Rows of a target file by repo path; None when the file is not readable Parquet."""

SHRINK_HINT = "pass --allow-shrink (allow_shrink=True) to publish it anyway"


@dataclass(frozen=True)
class ConfigCount:
    files: int = 0
    rows: int = 0

    def plus(self, rows: int) -> ConfigCount:
        return ConfigCount(self.files + 1, self.rows + rows)


@dataclass(frozen=True)
class Shrink:
    """A config the build holds fewer files or rows of than the target."""

    config: str
    before: ConfigCount
    after: ConfigCount

    def describe(self) -> str:
        gone = " (config no longer built)" if self.after.files == 0 else ""
        return (
            f"{self.config}: files {self.before.files:,} -> {self.after.files:,}, "
            f"rows {self.before.rows:,} -> {self.after.rows:,}{gone}"
        )


def config_of(repo_path: str) -> str | None:
    """The config of a dataset file `data/{config}/....parquet`; None for any other path."""
    parts = repo_path.split("/")
    if len(parts) < 3 or f"{parts[0]}/" != MANAGED_PREFIX or not repo_path.endswith(".parquet"):
        return None
    return parts[1]


def require_data(manifest: Manifest, target: str) -> None:
    """An empty build is an error, never an empty dataset."""
    if not any(config_of(f.repo_path) for f in manifest.files):
        raise PublishError(
            f"refusing to publish to {target}: the build holds no data files "
            "(is the silver warehouse empty or the wrong path?)"
        )


def built_counts(manifest: Manifest) -> dict[str, ConfigCount]:
    counts: dict[str, ConfigCount] = {}
    for file in manifest.files:
        config = config_of(file.repo_path)
        if config is not None:
            counts[config] = counts.get(config, ConfigCount()).plus(file.rows or 0)
    return counts


def published_counts(
    manifest: Manifest, remote: Mapping[str, RemoteFile], rows_of: RowCounter
) -> dict[str, ConfigCount]:
    """Files and rows per config on the target; unreadable files count as files of 0 rows."""
    built = manifest.by_path()
    counts: dict[str, ConfigCount] = {}
    for path in sorted(remote):
        config = config_of(path)
        if config is None:
            continue
        twin = built.get(path)
        if twin is not None and twin.rows is not None and same_content(twin, remote[path]):
            rows: int | None = twin.rows
        else:
            rows = rows_of(path)
            if rows is None:
                log.warning("published file %s is not readable Parquet; counted as 0 rows", path)
        counts[config] = counts.get(config, ConfigCount()).plus(rows or 0)
    return counts


def find_shrinks(
    built: Mapping[str, ConfigCount], published: Mapping[str, ConfigCount]
) -> tuple[Shrink, ...]:
    shrinks = []
    for config in sorted(published):
        before, after = published[config], built.get(config, ConfigCount())
        if after.files < before.files or after.rows < before.rows:
            shrinks.append(Shrink(config, before, after))
    return tuple(shrinks)


def check_shrink(
    manifest: Manifest,
    remote: Mapping[str, RemoteFile],
    rows_of: RowCounter,
    *,
    target: str,
    allow_shrink: bool,
) -> tuple[Shrink, ...]:
    """The configs that would shrink; `PublishError` listing them unless `allow_shrink`."""
    require_data(manifest, target)
    shrinks = find_shrinks(built_counts(manifest), published_counts(manifest, remote, rows_of))
    if not shrinks:
        return ()
    diff = "\n".join(f"  {s.describe()}" for s in shrinks)
    if not allow_shrink:
        raise PublishError(
            f"refusing to publish to {target}: the build has fewer files or rows than the "
            f"published dataset in {len(shrinks)} config(s); nothing was changed "
            f"({SHRINK_HINT}):\n{diff}"
        )
    log.warning("publish to %s shrinks %d config(s) (allowed):\n%s", target, len(shrinks), diff)
    return shrinks
