"""Pull step for `prefect.yaml`: run flows from a local checkout or from a git clone."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def _given(value: str | None) -> str | None:
    """Treat empty values and unresolved `{{ $VAR }}` placeholders as not given."""
    if value is None:
        return None
    text = value.strip()
    return None if not text or text.startswith("{{") else text


def checkout(
    directory: str | None = None,
    repository: str | None = None,
    branch: str | None = None,
    clone_root: str | None = None,
) -> dict[str, str]:
    """Change into the project's code before a flow run.

    With `repository` (e.g. from `CRYPTO_PIPELINE_GIT_URL` at deploy time), the repository
    is cloned once into `clone_root` (default `~/.cache/crypto-pipeline/checkouts`) and
    updated on later runs; otherwise `directory`, the local checkout `prefect deploy` was
    run from, is used. Returns `{"directory": ...}` for later steps.
    """
    repo = _given(repository)
    if repo:
        root = Path(_given(clone_root) or Path.home() / ".cache/crypto-pipeline/checkouts")
        target = root / repo.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
        if (target / ".git").exists():
            subprocess.run(
                ["git", "-C", str(target), "fetch", "--depth", "1", "origin"], check=True
            )
            ref = f"origin/{_given(branch)}" if _given(branch) else "FETCH_HEAD"
            subprocess.run(["git", "-C", str(target), "reset", "--hard", ref], check=True)
        else:
            root.mkdir(parents=True, exist_ok=True)
            cmd = ["git", "clone", "--depth", "1", repo, str(target)]
            if _given(branch):
                cmd[2:2] = ["--branch", str(_given(branch))]
            subprocess.run(cmd, check=True)
        path = target
    else:
        local = _given(directory)
        if local is None:
            raise ValueError("checkout needs a local directory or a git repository URL")
        path = Path(local)
        if not path.is_dir():
            raise ValueError(f"checkout directory {local!r} does not exist on this worker")
    os.chdir(path)
    return {"directory": str(path)}
