"""Create the work pool, the code's git source and (optionally) the HF token Secret block.

    python -m deployments.setup [--pool crypto-pipeline] [--type process]
        [--git-url URL [--git-branch BRANCH] | --git-snapshot DIR] [--hf-token-from-env]

Idempotent: an existing pool or block is left as it is (the block is overwritten only with
`--hf-token-from-env`, reading `HF_TOKEN`; the token is never printed).

The deployments' pull steps (prefect.yaml) clone the code on the worker, at the start of every
flow run, from the Prefect Variables `crypto_pipeline_git_url` and `crypto_pipeline_git_branch`
(resolved when the run starts). `--git-url` sets them (default: this checkout's `origin`, the
branch left to the remote's default unless `--git-branch`); `--git-snapshot DIR` instead commits
this checkout's working tree (tracked and untracked, not ignored, files) into a fresh git
repository at DIR and points the variables at its file:// URL: workers on this machine (tests,
benchmarks, offline use) then clone exactly the code at hand, through the same pull steps.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

DEFAULT_POOL = "crypto-pipeline"
GIT_URL_VARIABLE = "crypto_pipeline_git_url"
GIT_BRANCH_VARIABLE = "crypto_pipeline_git_branch"
CHECKOUT = Path(__file__).resolve().parents[1]


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def origin_url(checkout: Path = CHECKOUT) -> str | None:
    """The `origin` remote of `checkout`, if it has one."""
    try:
        return _git("remote", "get-url", "origin", cwd=checkout) or None
    except (subprocess.CalledProcessError, OSError):
        return None


def snapshot_repository(dest: Path, checkout: Path = CHECKOUT) -> str:
    """Commit `checkout`'s working tree (tracked and untracked files git does not ignore) as
    the one commit of a new repository at `dest`; its file:// URL (what `git_clone` takes)."""
    files = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=checkout)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for rel in filter(None, files.split("\0")):
        source = checkout / rel
        if source.is_file():  # a tracked file deleted in the working tree is left out
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / rel)
    _git("init", "--quiet", "--initial-branch", "main", cwd=dest)
    _git("add", "--all", cwd=dest)
    _git(
        "-c",
        "user.name=crypto-pipeline",
        "-c",
        "user.email=crypto-pipeline@localhost",
        "commit",
        "--quiet",
        "--no-verify",
        "-m",
        f"snapshot of {checkout}",
        cwd=dest,
    )
    return dest.resolve().as_uri()


async def set_git_source(url: str, branch: str | None) -> None:
    """Point the pull steps at `url` (and `branch`; empty: the remote's default branch)."""
    from prefect.variables import Variable

    await Variable.aset(GIT_URL_VARIABLE, url, overwrite=True)
    await Variable.aset(GIT_BRANCH_VARIABLE, branch or "", overwrite=True)


async def ensure_work_pool(name: str, pool_type: str) -> bool:
    """Create the work pool if missing; True when it was created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    async with get_client() as client:
        try:
            await client.create_work_pool(WorkPoolCreate(name=name, type=pool_type))
            return True
        except ObjectAlreadyExists:
            return False


def save_hf_token_block(block_name: str) -> bool:
    """Store HF_TOKEN in a Prefect Secret block; False when HF_TOKEN is unset."""
    from prefect.blocks.system import Secret

    token = os.environ.get("HF_TOKEN")
    if not token:
        return False
    Secret(value=token).save(block_name, overwrite=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", default=DEFAULT_POOL)
    parser.add_argument("--type", default="process", choices=["process", "docker", "kubernetes"])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--git-url", help="where workers clone the code (default: origin)")
    source.add_argument(
        "--git-snapshot",
        type=Path,
        metavar="DIR",
        help="commit this working tree into a new repository at DIR and clone from it",
    )
    parser.add_argument("--git-branch", default="", help="branch to clone (default: remote's)")
    parser.add_argument("--hf-token-from-env", action="store_true")
    parser.add_argument("--hf-token-block", default="hf-token")
    args = parser.parse_args(argv)
    created = asyncio.run(ensure_work_pool(args.pool, args.type))
    print(f"work pool {args.pool!r} ({args.type}): {'created' if created else 'exists'}")
    url: str | None = args.git_url or origin_url()
    branch: str = args.git_branch
    if args.git_snapshot is not None:
        url, branch = snapshot_repository(args.git_snapshot), "main"
    if url:
        asyncio.run(set_git_source(url, branch))
        shown = url.split("@", 1)[-1] if "://" in url else url  # no user:token@ on screen
        print(f"flow runs clone {shown}" + (f" (branch {branch})" if branch else ""))
    else:
        print(
            f"no git source: set one with --git-url (Prefect Variable {GIT_URL_VARIABLE!r}) "
            "before runs start",
            file=sys.stderr,
        )
    if args.hf_token_from_env:
        if save_hf_token_block(args.hf_token_block):
            print(f"secret block {args.hf_token_block!r}: saved from HF_TOKEN")
        else:
            print("HF_TOKEN is not set; no secret block saved", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
