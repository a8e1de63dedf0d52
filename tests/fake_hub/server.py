"""The fake Hub's HTTP surface: the calls `huggingface_hub` and `datasets` make to publish and load.

Upload modes are answered as the real Hub answers them: `lfs` for a path the head's
`.gitattributes` routes through LFS (`*.parquet` in a new repo) or a file of 10 MiB or more,
`regular` otherwise. A regular file arrives inline (base64) in the commit NDJSON; an LFS file is
uploaded first, and the commit names it by sha256 in an `lfsFile` line:

- git-LFS (the client with Xet disabled): `POST /datasets/{repo}.git/info/lfs/objects/batch`
  answers an upload action (none for an object already stored), the client PUTs the bytes to the
  storage stand-in (`/lfs-storage/...`, checked against the announced sha256 and size).
- Xet (the client's default when `hf_xet` is installed): `GET .../xet-write-token/{rev}` answers
  the token and the CAS address in `X-Xet-*` headers; the CAS stand-in (`/cas/...`) records every
  request and accepts it, but cannot reassemble files from Xet's chunk format, so a file committed
  through Xet has its sha256 and size on the fake Hub but no bytes to serve.

A commit line naming an LFS object that was never uploaded, or an inline file that should have
been LFS, is refused as the real Hub refuses it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import yaml
from aiohttp import web

from tests.fake_hub.state import (
    INITIAL_GITATTRIBUTES,
    Commit,
    HubState,
    MissingEntryError,
    Repo,
    StaleParentError,
    XetRequest,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REPO = "/{ns}/{name}"
HUB_KEY: web.AppKey[HubState] = web.AppKey("hub")


def build_app(hub: HubState) -> web.Application:
    """The fake Hub's routes, answering from (and recording into) `hub`."""
    app = web.Application(middlewares=[_record, _authenticate], client_max_size=1 << 31)
    app[HUB_KEY] = hub
    api = "/api/datasets" + REPO
    app.router.add_get("/api/whoami-v2", whoami)
    app.router.add_post("/api/repos/create", create_repo)
    app.router.add_post("/api/validate-yaml", validate_yaml)
    app.router.add_get(api, repo_info)
    app.router.add_get(api + "/revision/{rev}", repo_info)
    app.router.add_post(api + "/preupload/{rev}", preupload)
    app.router.add_post(api + "/commit/{rev}", commit)
    app.router.add_get(api + "/tree/{rev}", tree)
    app.router.add_get(api + "/tree/{rev}/{path:.+}", tree)
    app.router.add_post(api + "/paths-info/{rev}", paths_info)
    app.router.add_get(api + "/commits/{rev}", commits)
    app.router.add_get("/datasets" + REPO + "/resolve/{rev}/{path:.+}", resolve)
    app.router.add_post("/datasets/{ns}/{name:[^/]+?}.git/info/lfs/objects/batch", lfs_batch)
    app.router.add_put("/lfs-storage/{ns}/{name}/{oid}", lfs_store)
    app.router.add_get(api + "/xet-write-token/{rev}", xet_write_token)
    app.router.add_route("*", "/cas/{tail:.*}", xet_cas)
    app.router.add_post("/v1/telemetry", telemetry)
    return app


def error(status: int, message: str, code: str | None = None, **extra: Any) -> web.Response:
    headers = {"X-Error-Message": " ".join(message.split())}
    if code:
        headers["X-Error-Code"] = code
    return web.json_response({"error": message, **extra}, status=status, headers=headers)


@web.middleware
async def _record(request: web.Request, handler: Handler) -> web.StreamResponse:
    hub = request.app[HUB_KEY]
    authorized = "Authorization" in request.headers
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        hub.log(request.method, request.raw_path, exc.status, authorized)
        raise
    except Exception as exc:  # a fake-Hub bug: answer 500 naming it, never drop the connection
        response = error(500, f"fake Hub error in {request.method} {request.path}: {exc!r}")
    hub.log(request.method, request.raw_path, response.status, authorized)
    return response


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    hub = request.app[HUB_KEY]
    if request.path.startswith(("/lfs-storage/", "/cas/", "/v1/")):
        return await handler(request)  # presigned storage URL / the CAS's own token
    header = request.headers.get("Authorization")
    if hub.token is not None and header is not None and header != f"Bearer {hub.token}":
        return error(401, "Invalid credentials in Authorization header")
    writes = request.method == "POST" and request.path != "/api/validate-yaml"
    if hub.token is not None and header is None and writes:
        return error(401, "You must be authenticated to write to the Hub")
    return await handler(request)


def _hub(request: web.Request) -> HubState:
    return request.app[HUB_KEY]


def _repo(request: web.Request) -> Repo | web.Response:
    repo_id = f"{request.match_info['ns']}/{request.match_info['name']}"
    repo = _hub(request).repos.get(repo_id)
    authorized = "Authorization" in request.headers
    if repo is None or (repo.private and not authorized):
        return error(404, f"Repository {repo_id} not found", "RepoNotFound")
    return repo


def _revision(request: web.Request, repo: Repo) -> Commit | web.Response:
    try:
        return repo.resolve(unquote(request.match_info.get("rev", "main")))
    except MissingEntryError as exc:
        return error(404, str(exc), "RevisionNotFound")


async def whoami(request: web.Request) -> web.Response:
    hub = _hub(request)
    if "Authorization" not in request.headers:
        return error(401, "Invalid user token")
    return web.json_response({"type": "user", "name": hub.user, "orgs": [], "auth": {}})


async def create_repo(request: web.Request) -> web.Response:
    hub = _hub(request)
    body = await request.json()
    namespace = body.get("organization") or hub.user
    repo_id = f"{namespace}/{body['name']}"
    url = f"{hub.url}/datasets/{repo_id}"
    if body.get("type") != "dataset":
        return error(400, f"the fake Hub only serves dataset repos, not {body.get('type')!r}")
    with hub.lock:
        if repo_id in hub.repos:
            return error(409, "You already created this dataset repo", url=url)
        private = body.get("visibility") == "private" or bool(body.get("private"))
        repo = Repo(repo_id=repo_id, private=private)
        repo.commit(
            title="initial commit",
            parent=None,
            added={".gitattributes": INITIAL_GITATTRIBUTES},
            deleted_files=[],
            deleted_folders=[],
        )
        hub.repos[repo_id] = repo
    return web.json_response({"url": url, "name": repo_id})


async def validate_yaml(request: web.Request) -> web.Response:
    body = await request.json()
    content: str = body.get("content", "")
    if content.startswith("---"):
        front = content.split("---", 2)[1] if content.count("---") >= 2 else ""
        try:
            meta = yaml.safe_load(front) or {}
        except yaml.YAMLError as exc:
            return error(400, f"Invalid YAML in README.md: {exc}")
        if not isinstance(meta, dict):
            return error(400, "README.md metadata must be a mapping")
        for config in meta.get("configs", []) or []:
            if "config_name" not in config:
                return error(400, '"configs" entries need a "config_name"')
    return web.json_response({"errors": [], "warnings": []})


async def repo_info(request: web.Request) -> web.Response:
    hub = _hub(request)
    repo = _repo(request)
    if isinstance(repo, web.Response):
        return repo
    with hub.lock:
        head = _revision(request, repo)
        if isinstance(head, web.Response):
            return head
        return web.json_response(
            {
                "id": repo.repo_id,
                "author": repo.repo_id.split("/")[0],
                "sha": head.oid,
                "private": repo.private,
                "gated": False,
                "disabled": False,
                "lastModified": _iso(head.date),
                "tags": [],
                "siblings": [{"rfilename": p} for p in sorted(head.files)],
            }
        )


async def preupload(request: web.Request) -> web.Response:
    hub = _hub(request)
    repo = _repo(request)
    if isinstance(repo, web.Response):
        return repo
    body = await request.json()
    with hub.lock:
        head = _revision(request, repo)
        if isinstance(head, web.Response):
            return head
        files = [
            {
                "path": f["path"],
                "uploadMode": repo.upload_mode(head, f["path"], int(f["size"])),
                "shouldIgnore": False,
                "oid": repo.remote_oid(head, f["path"]),
            }
            for f in body["files"]
        ]
    return web.json_response({"files": files})


async def commit(request: web.Request) -> web.Response:
    hub = _hub(request)
    repo = _repo(request)
    if isinstance(repo, web.Response):
        return repo
    if request.query.get("create_pr"):
        return error(400, "the fake Hub does not support pull requests")
    lines = [json.loads(line) for line in (await request.read()).splitlines() if line.strip()]
    if not lines or lines[0].get("key") != "header":
        return error(400, "commit payload must start with a header line")
    header = lines[0]["value"]
    added: dict[str, bytes] = {}
    deleted_files: list[str] = []
    deleted_folders: list[str] = []
    lfs_files: dict[str, tuple[str, int]] = {}
    for line in lines[1:]:
        key, value = line["key"], line["value"]
        if key == "file":
            added[value["path"]] = base64.b64decode(value["content"])
        elif key == "lfsFile":
            if value.get("algo") != "sha256":
                return error(400, f"unsupported LFS hash algorithm {value.get('algo')!r}")
            lfs_files[value["path"]] = (value["oid"], int(value["size"]))
        elif key == "deletedFile":
            deleted_files.append(value["path"])
        elif key == "deletedFolder":
            deleted_folders.append(value["path"])
        else:
            return error(400, f"the fake Hub does not accept {key!r} commit lines")
    with hub.lock:
        head = repo.head
        for path, content in added.items():
            if repo.upload_mode(head, path, len(content)) == "lfs":
                return error(
                    400,
                    f"Your push was rejected because it contains binary files ({path}): "
                    "upload them with LFS or Xet",
                )
        for path, (sha256, size) in lfs_files.items():
            stored = repo.store.get(sha256)
            via_xet = repo.xet_uploads > 0
            if (stored is None or len(stored) != size) and not via_xet:
                return error(
                    400,
                    f"Your push was rejected because an LFS pointer ({path}) points to a file "
                    "that does not exist",
                )
            added[path] = repo.add_lfs_pointer(sha256, size, xet=stored is None)
    fault = hub.next_fault()
    if fault == "429-before":
        return error(429, "You have exceeded our hourly quotas for action: commit")
    if fault == "412":
        return error(412, "A commit has happened since. Please refresh and try again.")
    if fault == "foreign-commit":
        hub.commit_as_other(repo.repo_id, b"written by another client\n")
    with hub.lock:
        if unquote(request.match_info["rev"]) != "main":
            return error(400, "the fake Hub only commits to main")
        try:
            landed = repo.commit(
                title=header.get("summary", ""),
                description=header.get("description", ""),
                parent=header.get("parentCommit"),
                added=added,
                deleted_files=deleted_files,
                deleted_folders=deleted_folders,
            )
        except StaleParentError as exc:
            return error(412, str(exc))
        except MissingEntryError as exc:
            return error(404, str(exc), "EntryNotFound")
    if fault == "429-after":
        return error(429, "You have exceeded our hourly quotas for action: commit")
    if fault == "500-after":
        return error(500, "Internal Error - We're working hard to fix this as soon as possible!")
    url = f"{hub.url}/datasets/{repo.repo_id}/commit/{landed.oid}"
    return web.json_response({"commitOid": landed.oid, "commitUrl": url, "success": True})


async def lfs_batch(request: web.Request) -> web.Response:
    """The git-LFS batch API: an upload action for each object the storage does not hold."""
    hub = _hub(request)
    repo = _repo(request)
    if isinstance(repo, web.Response):
        return repo
    body = await request.json()
    if body.get("operation") != "upload":
        return error(400, "the fake Hub's LFS batch API only uploads")
    objects = []
    with hub.lock:
        for obj in body.get("objects", []):
            oid, size = str(obj["oid"]), int(obj["size"])
            entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            stored = repo.store.get(oid)
            if stored is None or len(stored) != size:
                href = f"{hub.url}/lfs-storage/{repo.repo_id}/{oid}?size={size}"
                entry["actions"] = {"upload": {"href": href, "expires_in": 3600}}
            objects.append(entry)
    return web.json_response(
        {"transfer": "basic", "objects": objects},
        content_type="application/vnd.git-lfs+json",
    )


async def lfs_store(request: web.Request) -> web.Response:
    """The storage stand-in behind the LFS upload URL: keeps bytes whose sha256 and size match."""
    hub = _hub(request)
    repo_id = f"{request.match_info['ns']}/{request.match_info['name']}"
    oid = request.match_info["oid"]
    content = await request.read()
    if hashlib.sha256(content).hexdigest() != oid:
        return error(400, f"uploaded content does not hash to {oid}")
    if str(len(content)) != request.query.get("size", str(len(content))):
        return error(400, f"uploaded {len(content)} bytes, {request.query['size']} announced")
    with hub.lock:
        hub.get(repo_id).store[oid] = content
    return web.Response(status=200)


async def xet_write_token(request: web.Request) -> web.Response:
    """A short-lived CAS write token and the CAS address, in the headers the client reads."""
    hub = _hub(request)
    repo = _repo(request)
    if isinstance(repo, web.Response):
        return repo
    if "Authorization" not in request.headers:
        return error(401, "You must be authenticated to write to the Hub")
    with hub.lock:
        token = hub.issue_xet_token(repo.repo_id)
    headers = {
        "X-Xet-Cas-Url": f"{hub.url}/cas",
        "X-Xet-Access-Token": token,
        "X-Xet-Token-Expiration": str(int(time.time()) + 3600),
    }
    body = {"casUrl": headers["X-Xet-Cas-Url"], "accessToken": token, "exp": 0}
    return web.json_response(body, headers=headers)


async def xet_cas(request: web.Request) -> web.Response:
    """The Xet CAS stand-in: records every request, accepts xorb and shard uploads.

    A shard names the files it completes only inside Xet's binary format, which this stand-in
    does not parse: any upload accepted under a repo's token marks that repo as having received
    Xet content, and the commit's `lfsFile` lines are then taken at their word.
    """
    hub = _hub(request)
    body = await request.read()
    header = request.headers.get("Authorization", "")
    with hub.lock:
        repo_id = hub.xet_tokens.get(header.removeprefix("Bearer "))
        hub.xet_requests.append(
            XetRequest(request.method, request.path, len(body), repo_id is not None)
        )
    if repo_id is None:
        return error(401, "invalid or missing CAS token")
    tail = request.match_info["tail"]
    if request.method == "GET":  # dedup queries and reconstructions: nothing is known here
        return error(404, f"{tail} not found")
    if tail.startswith("v1/xorb-grants/"):  # no presigned-upload grant: upload to the CAS itself
        return error(404, "xorb upload grants are not offered by this CAS")
    if tail.startswith("v2/"):  # the streamed shard protocol: the client falls back to v1
        return error(404, f"{tail} is not offered by this CAS")
    with hub.lock:
        hub.get(repo_id).xet_uploads += 1
    if tail.startswith("v1/shards"):
        return web.json_response({"result": 1})
    return web.json_response({"was_inserted": True})


async def telemetry(request: web.Request) -> web.Response:
    """hf_xet's telemetry beacon (sent to the Hub endpoint): accepted and dropped."""
    await request.read()
    return web.Response(status=200)


async def tree(request: web.Request) -> web.Response:
    hub = _hub(request)
    repo = _repo(request)
    if isinstance(repo, web.Response):
        return repo
    recursive = request.query.get("recursive", "false").lower() == "true"
    folder = unquote(request.match_info.get("path", ""))
    with hub.lock:
        head = _revision(request, repo)
        if isinstance(head, web.Response):
            return head
        try:
            entries = repo.entries(head, folder, recursive=recursive)
        except MissingEntryError as exc:
            return error(404, str(exc), "EntryNotFound")
    offset = int(request.query.get("cursor", "0"))
    page = entries[offset : offset + hub.page_size]
    headers = {}
    if offset + hub.page_size < len(entries):
        next_url = f"{hub.url}{request.rel_url.update_query(cursor=str(offset + hub.page_size))}"
        headers["Link"] = f'<{next_url}>; rel="next"'
    return web.json_response(page, headers=headers)


async def paths_info(request: web.Request) -> web.Response:
    hub = _hub(request)
    repo = _repo(request)
    if isinstance(repo, web.Response):
        return repo
    form = await request.post()
    paths = [str(p) for p in form.getall("paths", [])]
    with hub.lock:
        head = _revision(request, repo)
        if isinstance(head, web.Response):
            return head
        found = [repo.path_info(head, p) for p in paths]
    return web.json_response([entry for entry in found if entry is not None])


async def commits(request: web.Request) -> web.Response:
    hub = _hub(request)
    repo = _repo(request)
    if isinstance(repo, web.Response):
        return repo
    with hub.lock:
        head = _revision(request, repo)
        if isinstance(head, web.Response):
            return head
        chain = repo.history[: repo.history.index(head) + 1]
        listed = [
            {
                "id": c.oid,
                "title": c.title,
                "message": c.description,
                "authors": [{"user": hub.user}],
                "date": _iso(c.date),
            }
            for c in reversed(chain)
        ]
    return web.json_response(listed)


async def resolve(request: web.Request) -> web.Response:
    hub = _hub(request)
    repo = _repo(request)
    if isinstance(repo, web.Response):
        return repo
    path = unquote(request.match_info["path"])
    with hub.lock:
        head = _revision(request, repo)
        if isinstance(head, web.Response):
            return head
        try:
            content = repo.content(head, path)
        except MissingEntryError as exc:
            return error(404, str(exc), "EntryNotFound")
        oid = repo.remote_oid(head, path)
    headers = {
        "ETag": f'"{oid}"',
        "X-Repo-Commit": head.oid,
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
    }
    span = _byte_range(request.headers.get("Range"), len(content))
    if span is None:
        return web.Response(body=content, headers=headers)
    start, end = span
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(content)}"
    return web.Response(body=content[start:end], status=206, headers=headers)


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """[start, end) of a single `bytes=` range, clamped to the content."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].partition("-")
    if not first:
        return max(0, size - int(last)), size
    return int(first), min(size, int(last) + 1) if last else size


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
