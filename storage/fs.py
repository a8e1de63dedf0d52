"""Filesystems behind a warehouse URI, and atomic whole-object writes on them.

A URI is a local path (relative paths resolve against the CWD), `file:///abs/path`, or
`s3://bucket/prefix`. S3 is configured from the standard AWS variables: `AWS_ENDPOINT_URL`
(or `AWS_ENDPOINT_URL_S3`), `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (else the AWS SDK's own credential chain).

Atomicity: a local write goes to a temp file under `{root}/.staging/` (same filesystem, outside
every dataset directory, so no reader glob or directory scan can see it), is fsynced, then
`os.replace`d into place. An S3 write is one PutObject of the complete, already-serialized
object (`allow_delayed_open` makes pyarrow send a single PUT below its 10 MiB part size; larger
objects go as a multipart upload, which S3 also publishes only on completion).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from models.settings import validate_warehouse_uri

STAGING_DIR = ".staging"
STALE_TEMP_SECONDS = 600.0
S3_SINGLE_PUT_LIMIT = 10 * 1024 * 1024


@dataclass(frozen=True)
class Location:
    """Where a warehouse lives: a pyarrow filesystem, the root inside it, and its public URI."""

    filesystem: pafs.FileSystem
    root: str  # path inside `filesystem`: "/abs/dir" or "bucket/prefix"
    uri: str  # "/abs/dir" or "s3://bucket/prefix"
    # for polars on S3; holds the credentials, so it stays out of the repr
    storage_options: dict[str, str] | None = field(default=None, repr=False)

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")


def s3_settings(env: Mapping[str, str]) -> dict[str, str]:
    """The S3 connection settings present in `env` (standard AWS variable names)."""
    out: dict[str, str] = {}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        out["endpoint_url"] = endpoint
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        out["region"] = region
    elif endpoint:
        out["region"] = "us-east-1"  # custom endpoints rarely care; avoids a region lookup
    for var, key in (
        ("AWS_ACCESS_KEY_ID", "access_key"),
        ("AWS_SECRET_ACCESS_KEY", "secret_key"),
        ("AWS_SESSION_TOKEN", "session_token"),
    ):
        if env.get(var):
            out[key] = env[var]
    return out


def s3_filesystem(settings: Mapping[str, str]) -> pafs.S3FileSystem:
    """A pyarrow S3 filesystem for `s3_settings(...)` output."""
    kwargs: dict[str, object] = {"allow_delayed_open": True}
    endpoint = settings.get("endpoint_url")
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs["scheme"] = parts.scheme
        kwargs["endpoint_override"] = parts.netloc + parts.path.rstrip("/")
    if "region" in settings:
        kwargs["region"] = settings["region"]
    if "access_key" in settings and "secret_key" in settings:
        kwargs["access_key"] = settings["access_key"]
        kwargs["secret_key"] = settings["secret_key"]
        if "session_token" in settings:
            kwargs["session_token"] = settings["session_token"]
    return pafs.S3FileSystem(**kwargs)  # type: ignore[arg-type]


def polars_storage_options(settings: Mapping[str, str]) -> dict[str, str]:
    """The same S3 settings spelled as polars `storage_options`."""
    names = {
        "endpoint_url": "aws_endpoint_url",
        "region": "aws_region",
        "access_key": "aws_access_key_id",
        "secret_key": "aws_secret_access_key",
        "session_token": "aws_session_token",
    }
    out = {names[k]: v for k, v in settings.items() if k in names}
    if settings.get("endpoint_url", "").startswith("http://"):
        out["aws_allow_http"] = "true"
    return out


def open_location(uri: str, env: Mapping[str, str] | None = None) -> Location:
    """Resolve a warehouse URI to a filesystem and root; refuses unsupported schemes."""
    text = validate_warehouse_uri(uri)
    if text.startswith("s3://"):
        root = text[5:].strip("/")
        settings = s3_settings(os.environ if env is None else env)
        return Location(
            filesystem=s3_filesystem(settings),
            root=root,
            uri=f"s3://{root}",
            storage_options=polars_storage_options(settings),
        )
    if text.startswith("file://"):
        text = urlsplit(text).path
    path = Path(text).expanduser().resolve()
    return Location(filesystem=pafs.LocalFileSystem(), root=path.as_posix(), uri=path.as_posix())


class Store:
    """Whole-object I/O relative to a warehouse root; the only place that touches storage."""

    def __init__(self, location: Location) -> None:
        self.location = location
        self.fs = location.filesystem

    def full(self, rel: str) -> str:
        return f"{self.location.root}/{rel}" if rel else self.location.root

    def uri(self, rel: str) -> str:
        return f"{self.location.uri}/{rel}" if rel else self.location.uri

    def info(self, rel: str) -> pafs.FileInfo:
        return self.fs.get_file_info(self.full(rel))

    def exists(self, rel: str) -> bool:
        return self.info(rel).type == pafs.FileType.File

    def stamps(self, rels: Sequence[str]) -> dict[str, str]:
        """A stamp per existing file that changes whenever the file is replaced or rewritten.

        Local: size, mtime in ns and inode (an atomic replace always brings a new inode).
        S3: size and LastModified (what a HEAD returns). Missing files are left out.
        """
        if not rels:
            return {}
        if not self.location.is_s3:
            out = {}
            for rel in rels:
                try:
                    st = os.stat(self.full(rel))
                except FileNotFoundError:
                    continue
                out[rel] = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
            return out
        infos = self.fs.get_file_info([self.full(rel) for rel in rels])
        return {
            rel: f"{info.size}:{info.mtime_ns}"
            for rel, info in zip(rels, infos, strict=True)
            if info.type == pafs.FileType.File
        }

    def open_input(self, rel: str) -> pa.NativeFile:
        return self.fs.open_input_file(self.full(rel))

    def read_bytes(self, rel: str) -> bytes:
        """The whole object; `FileNotFoundError` if it is gone, also when S3 answers the GET
        404 after the object was listed (Arrow raises a plain `OSError` then): the coverage
        index retries on it when another process compacted meanwhile."""
        try:
            with self.fs.open_input_stream(self.full(rel)) as stream:
                return bytes(stream.read())
        except FileNotFoundError:
            raise
        except OSError as exc:
            if _is_not_found(exc):
                raise FileNotFoundError(f"{self.full(rel)}: {exc}") from exc
            raise

    def list_files(self, rel: str) -> list[str]:
        """Relative paths of all files under `rel`, recursively, skipping dot/underscore names."""
        selector = pafs.FileSelector(self.full(rel), recursive=True, allow_not_found=True)
        prefix = len(self.location.root) + 1
        out = []
        for info in self.fs.get_file_info(selector):
            if info.type != pafs.FileType.File or info.base_name.startswith((".", "_")):
                continue
            out.append(info.path[prefix:])
        return sorted(out)

    def delete(self, rel: str) -> bool:
        """Remove one file; False if it was already gone."""
        try:
            self.fs.delete_file(self.full(rel))
        except FileNotFoundError:
            return False
        return True

    def put_bytes(self, rel: str, data: bytes) -> None:
        """Publish `data` at `rel` atomically: readers see the old object or the new one."""
        if self.location.is_s3:
            with self.fs.open_output_stream(self.full(rel)) as stream:
                stream.write(data)
        else:
            self._put_local(rel, data)

    def _put_local(self, rel: str, data: bytes) -> None:
        staging = Path(self.location.root) / STAGING_DIR
        staging.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(staging)
        target = Path(self.full(rel))
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = staging / f"{uuid.uuid4().hex}.{target.name}.tmp"
        try:
            with open(temp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        fsync_dir(target.parent)


def remove_stale_temps(staging: Path, max_age: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Delete temp files a crashed writer left behind (older than `max_age` seconds).

    Younger temp files may belong to a writer still at work and are left alone.
    """
    cutoff = time.time() - max_age
    removed = []
    for entry in os.scandir(staging):
        if not entry.name.endswith(".tmp"):
            continue
        try:
            stale = entry.is_file() and entry.stat().st_mtime < cutoff
        except FileNotFoundError:  # a concurrent writer renamed its temp file into place
            continue
        if stale:
            Path(entry.path).unlink(missing_ok=True)
            removed.append(Path(entry.path))
    return removed


def fsync_dir(path: Path) -> None:
    """Make a rename durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# How Arrow's S3 errors name a missing key: after a HEAD (`RESOURCE_NOT_FOUND`), from the GET
# itself (`NO_SUCH_KEY`, e.g. "AWS Error NO_SUCH_KEY during GetObject operation"), or the S3
# error code as sent (`NoSuchKey`).
_NOT_FOUND = ("RESOURCE_NOT_FOUND", "NO_SUCH_KEY", "NoSuchKey")


def _is_not_found(error: OSError) -> bool:
    """Whether Arrow's S3 error is a missing key (`_NOT_FOUND`)."""
    text = str(error)
    return any(marker in text for marker in _NOT_FOUND)
