"""Publish the staged layout to a Hub dataset repo in exactly one commit of what changed.

The diff is taken against the tree at the head read just before it, and that head is the commit's
`parent_commit`: a concurrent writer makes the commit fail with 412 and the diff is redone. A
429/5xx or a lost response is retried only after checking whether the commit landed anyway, so a
retry never duplicates a commit. The token stays a `SecretStr` until it is handed to `HfApi`.

Before each commit the shrink guard compares the build with that head (`tasks.publish.guard`):
rows of files unchanged on the Hub come from the manifest, the rows of the files the commit would
replace or delete from their Parquet footers, read at the head with ranged requests.

Upload path. The Hub answers `*.parquet` (its default `.gitattributes`) in LFS mode; the card is
sent inline. huggingface_hub then uploads LFS content through Xet when `hf_xet` is installed (it
is a dependency of huggingface_hub), else through the git-LFS batch API. The publisher uses
git-LFS by default (`upload="lfs"`: Xet is switched off in the client for the duration of the
publish), because every step of it is an HTTP call whose failure this module classifies, retries
and checks (Xet's Rust uploader raises its own errors), it is the path tested end to end against
the fake Hub, and the Hub accepts it for Xet-backed repos too, storing the files in Xet. The cost:
no client-side chunk deduplication, so a changed file is uploaded whole (files are monthly below
one hour and yearly above, so a daily publish uploads the current period's files).
`upload="xet"` leaves the client's default in place for repos where that upload volume matters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx2
import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, HfFileSystem
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from huggingface_hub.hf_api import RepoFile
from pydantic import SecretStr

from models.settings import validate_repo_id
from tasks.publish.diff import ChangePlan, RemoteFile, plan_changes
from tasks.publish.guard import RowCounter, check_shrink, require_data
from tasks.publish.manifest import Manifest, PublishError, check_staged
from tasks.publish.report import PublishReport

log = logging.getLogger(__name__)

REPO_TYPE = "dataset"
BRANCH = "main"
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
STALE_PARENT_STATUS = 412
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (2.0, 10.0, 30.0)
MAX_STALE_REDIFFS = 2
MAX_RETRY_AFTER = 120.0
AUTH_HINT = "\n(check the write token in HF_TOKEN or the Prefect Secret block)"
UploadPath = Literal["lfs", "xet"]
UPLOAD_PATHS: tuple[UploadPath, ...] = ("lfs", "xet")


class _StaleParent(Exception):
    """The branch moved under us: diff again."""


@dataclass(frozen=True)
class _Landed:
    sha: str
    url: str


def publish_to_hub(
    staging_dir: Path,
    manifest: Manifest,
    *,
    repo_id: str,
    token: SecretStr | None,
    endpoint: str | None = None,
    private: bool = False,
    dry_run: bool = False,
    commit_message: str | None = None,
    retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
    sleep: Callable[[float], None] = time.sleep,
    allow_shrink: bool = False,
    upload: UploadPath = "lfs",
) -> PublishReport:
    """One commit of the files whose content differs from `repo_id`'s main branch; none if equal.

    Refuses (`PublishError`, no commit) a build with fewer files or rows than main holds for any
    config, unless `allow_shrink`. LFS content goes through git-LFS (`upload="lfs"`, the default)
    or the client's default, Xet when installed (`upload="xet"`): see the module docstring.
    """
    if upload not in UPLOAD_PATHS:
        raise ValueError(f"upload must be one of {UPLOAD_PATHS}, not {upload!r}")
    validate_repo_id(repo_id)
    check_staged(staging_dir, manifest)
    require_data(manifest, repo_id)
    with git_lfs_uploads() if upload == "lfs" else _unchanged():
        return _publish(
            staging_dir,
            manifest,
            repo_id=repo_id,
            token=token,
            endpoint=endpoint,
            private=private,
            dry_run=dry_run,
            commit_message=commit_message,
            retry_delays=retry_delays,
            sleep=sleep,
            allow_shrink=allow_shrink,
        )


_XET_SWITCH = threading.Lock()
_xet_switch_holders = 0
_xet_saved = False


@contextmanager
def git_lfs_uploads() -> Iterator[None]:
    """huggingface_hub uploads LFS content through git-LFS, not Xet, while this is held.

    The client reads `constants.HF_HUB_DISABLE_XET` at each upload; it is set for as long as any
    publish holds this and restored when the last one leaves (the environment is not touched).
    """
    global _xet_switch_holders, _xet_saved
    with _XET_SWITCH:
        if _xet_switch_holders == 0:
            _xet_saved = hub_constants.HF_HUB_DISABLE_XET
            hub_constants.HF_HUB_DISABLE_XET = True
        _xet_switch_holders += 1
    try:
        yield
    finally:
        with _XET_SWITCH:
            _xet_switch_holders -= 1
            if _xet_switch_holders == 0:
                hub_constants.HF_HUB_DISABLE_XET = _xet_saved


@contextmanager
def _unchanged() -> Iterator[None]:
    yield


def _publish(
    staging_dir: Path,
    manifest: Manifest,
    *,
    repo_id: str,
    token: SecretStr | None,
    endpoint: str | None,
    private: bool,
    dry_run: bool,
    commit_message: str | None,
    retry_delays: Sequence[float],
    sleep: Callable[[float], None],
    allow_shrink: bool,
) -> PublishReport:
    api = HfApi(
        endpoint=endpoint,
        token=token.get_secret_value() if token is not None else False,
        library_name="crypto-pipeline",
    )
    try:
        if not dry_run:
            api.create_repo(repo_id, repo_type=REPO_TYPE, exist_ok=True, private=private)
        for _ in range(MAX_STALE_REDIFFS + 1):
            head, remote = remote_state(api, repo_id)
            shrinks = check_shrink(
                manifest,
                remote,
                footer_rows(api, repo_id, head),
                target=repo_id,
                allow_shrink=allow_shrink,
            )
            shrunk = tuple(s.describe() for s in shrinks)
            plan = plan_changes(manifest, remote)
            if plan.is_empty or dry_run:
                report = PublishReport.from_plan(repo_id, plan, dry_run=dry_run, shrunk=shrunk)
                log.info("publish to %s: %s", repo_id, _summary(plan, dry_run))
                return report
            try:
                landed = _commit(api, repo_id, plan, head, commit_message, retry_delays, sleep)
            except _StaleParent:
                log.warning(
                    "publish to %s: the branch moved during the commit; diffing again", repo_id
                )
                continue
            log.info(
                "publish to %s: commit %s, %s", repo_id, landed.sha[:12], _summary(plan, False)
            )
            return PublishReport.from_plan(
                repo_id,
                plan,
                dry_run=False,
                commit_sha=landed.sha,
                commit_url=landed.url,
                shrunk=shrunk,
            )
    except (HfHubHTTPError, httpx2.HTTPError) as exc:
        hint = AUTH_HINT if _status(exc) in (401, 403) else ""
        message = f"publishing to {repo_id} failed: {_scrub(str(exc), token)}{hint}"
        raise PublishError(message) from None
    raise PublishError(
        f"publishing to {repo_id} failed: the branch kept moving "
        f"({MAX_STALE_REDIFFS + 1} attempts each rejected as a stale parent)"
    )


def remote_state(api: HfApi, repo_id: str) -> tuple[str | None, dict[str, RemoteFile]]:
    """The head sha of main and every file of its tree; (None, {}) when the repo does not exist."""
    try:
        head = api.repo_info(repo_id, repo_type=REPO_TYPE, revision=BRANCH).sha
    except RepositoryNotFoundError:
        return None, {}
    files: dict[str, RemoteFile] = {}
    for entry in api.list_repo_tree(repo_id, repo_type=REPO_TYPE, revision=head, recursive=True):
        if isinstance(entry, RepoFile):
            files[entry.path] = RemoteFile(
                size=entry.size,
                sha256=entry.lfs.sha256 if entry.lfs is not None else None,
                git_sha1=None if entry.lfs is not None else entry.blob_id,
            )
    return head, files


def footer_rows(api: HfApi, repo_id: str, head: str | None) -> RowCounter:
    """Rows of a file at `head` from its Parquet footer (ranged reads, no data downloaded)."""
    filesystem = HfFileSystem(endpoint=api.endpoint, token=api.token, skip_instance_cache=True)

    def rows_of(path: str) -> int | None:
        with filesystem.open(f"datasets/{repo_id}/{path}", "rb", revision=head) as handle:
            try:
                return int(pq.read_metadata(handle).num_rows)
            except pa.ArrowInvalid:
                return None

    return rows_of


def default_commit_message(plan: ChangePlan) -> str:
    return (
        f"Publish dataset: {len(plan.added)} added, {len(plan.changed)} changed, "
        f"{len(plan.deleted)} deleted"
    )


def _commit(
    api: HfApi,
    repo_id: str,
    plan: ChangePlan,
    head: str | None,
    message: str | None,
    delays: Sequence[float],
    sleep: Callable[[float], None],
) -> _Landed:
    """`create_commit` with retries that first check whether the previous attempt landed."""
    for attempt in range(len(delays) + 1):
        try:
            info = api.create_commit(
                repo_id,
                _operations(plan),
                commit_message=message or default_commit_message(plan),
                repo_type=REPO_TYPE,
                revision=BRANCH,
                parent_commit=head,
            )
            return _Landed(sha=info.oid, url=info.commit_url)
        except (HfHubHTTPError, httpx2.TransportError) as exc:
            status = _status(exc)
            if status == STALE_PARENT_STATUS:
                raise _StaleParent from exc
            if status is not None and status not in TRANSIENT_STATUSES:
                raise
            if attempt == len(delays):
                raise
            wait = _retry_after(exc) or delays[attempt]
            log.warning(
                "publish to %s: commit attempt %d failed (%s); checking the repo in %.1f s",
                repo_id,
                attempt + 1,
                status or type(exc).__name__,
                wait,
            )
            sleep(wait)
            landed = _landed(api, repo_id, plan, head)
            if landed is not None:
                log.info(
                    "publish to %s: the failed attempt had landed as %s", repo_id, landed.sha[:12]
                )
                return landed
    raise AssertionError("unreachable")


def _landed(api: HfApi, repo_id: str, plan: ChangePlan, head: str | None) -> _Landed | None:
    """The commit holding the plan if the head moved to it; `_StaleParent` if it moved elsewhere."""
    new_head, remote = remote_state(api, repo_id)
    if new_head is None or new_head == head:
        return None
    uploaded = all(
        (r := remote.get(f.repo_path)) is not None
        and r.size == f.size
        and (r.sha256 == f.sha256 if r.sha256 else r.git_sha1 == f.git_sha1)
        for f in plan.uploads
    )
    if uploaded and not any(path in remote for path in plan.deleted):
        return _Landed(sha=new_head, url=f"{api.endpoint}/datasets/{repo_id}/commit/{new_head}")
    raise _StaleParent


def _operations(plan: ChangePlan) -> list[CommitOperationAdd | CommitOperationDelete]:
    """Fresh operation objects (the client mutates them, so each attempt needs new ones)."""
    adds = [CommitOperationAdd(f.repo_path, f.local_path) for f in plan.uploads]
    deletes = [CommitOperationDelete(path, is_folder=False) for path in plan.deleted]
    return [*adds, *deletes]


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return min(float(value), MAX_RETRY_AFTER) if value else None
    except ValueError:
        return None


def _summary(plan: ChangePlan, dry_run: bool) -> str:
    verb = "would upload" if dry_run else "uploaded"
    return (
        f"{len(plan.added)} added, {len(plan.changed)} changed, {len(plan.deleted)} deleted, "
        f"{len(plan.unchanged)} unchanged; {verb} {plan.upload_bytes:,} bytes"
    )


def _scrub(text: str, token: SecretStr | None) -> str:
    """Error text with the token (should a server ever echo it) masked."""
    secret = token.get_secret_value() if token is not None else ""
    return text.replace(secret, "***") if secret else text
