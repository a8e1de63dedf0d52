"""A recognisable fake HF token used by a full run plus a publish to the fake Hub appears in no
log line, artifact, flow-run parameter, task input, cache key, result, Prefect database row,
file, or error message."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

from tests.fake_hub import FakeHub
from tests.resilience.support import cli_env, finish, start_cli

TOKEN = "hf_ResilienceCanary7f3a9c2e41b8d6aa"
WRONG = "hf_WrongCanary0d9e8f7a6b5c4d3e2f1a0"
REPO = "tester/secrets-check"
DAY = date(2024, 2, 28)


def files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def database_rows_containing(db: Path, needle: str) -> list[str]:
    """Every row of every table of the Prefect database, as text, that mentions `needle`."""
    hits = []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert {"flow_run", "task_run", "log", "artifact"} <= set(tables)
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                text = " ".join(str(v) for v in row)
                if needle in text:
                    hits.append(f"{table}: {text[:200]}")
    return hits


def test_hf_token_leaks_nowhere(
    tmp_path: Path, sandbox: Any, api_url: str, prefect_db: Path
) -> None:
    with FakeHub(token=TOKEN) as hub:
        common = {"HF_ENDPOINT": hub.url, "PREFECT_LOGGING_LEVEL": "DEBUG"}
        warehouse = str(tmp_path / "warehouse")
        home = tmp_path / "home"
        env = cli_env(home, warehouse, api_url=api_url, extra={**common, "HF_TOKEN": TOKEN})
        runs = [
            finish(
                start_cli(
                    ["run", "--date", DAY.isoformat(), "--no-publish", "--sandbox", sandbox.url],
                    env,
                    tmp_path,
                )
            ),
        ]
        assert runs[0].code == 0, runs[0].stderr[-3000:]
        runs.append(finish(start_cli(["publish", "--repo-id", REPO], env, tmp_path)))
        assert runs[1].code == 0, runs[1].stderr[-3000:]
        # a refused token: the error names the failure, never the token
        bad_env = cli_env(
            tmp_path / "home-bad", warehouse, api_url=api_url, extra={**common, "HF_TOKEN": WRONG}
        )
        refused = finish(start_cli(["publish", "--repo-id", "tester/other"], bad_env, tmp_path))
        assert refused.code != 0
        assert "Traceback" not in refused.stderr

        # the token really was used: the publish landed as an authorized commit
        assert len(hub.commits(REPO)) >= 2
        assert any(r.authorized for r in hub.requests)
        hub_text = b"".join(hub.files(REPO).values())
        commit_text = " ".join(c.title + c.description for c in hub.commits(REPO))

    for secret in (TOKEN, WRONG):
        for done in (*runs, refused):
            assert secret not in done.stdout and secret not in done.stderr
        assert secret.encode() not in hub_text and secret not in commit_text
        for root in (tmp_path / "warehouse", home, tmp_path / "home-bad"):
            assert files_containing(root, secret.encode()) == []
        assert database_rows_containing(prefect_db, secret) == []
        db_files = [p for p in prefect_db.parent.iterdir() if p.name.startswith(prefect_db.name)]
        assert [p for p in db_files if secret.encode() in p.read_bytes()] == []
    assert len(runs[0].stderr) > 0  # DEBUG logging was on: there were log lines to search
    assert database_rows_containing(prefect_db, REPO)  # the dump does see run parameters
