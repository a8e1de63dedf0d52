"""`datasets.load_dataset` reads every config back, from the fake Hub and from a local folder.

`datasets` and `huggingface_hub` read HF_ENDPOINT at import time, so the loading runs in a fresh
interpreter with the environment set before import, and with name lookups limited to loopback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pydantic import SecretStr

from tasks.publish import publish_to_hub, publish_to_local
from tests.fake_hub import FakeHub

REPO = "tester/crypto"
LOADER = r"""
import json, socket, sys

attempts = []
real_getaddrinfo = socket.getaddrinfo

def loopback_only(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name not in ("127.0.0.1", "localhost", "::1"):
        attempts.append(name)
        raise socket.gaierror(f"blocked {host}")
    return real_getaddrinfo(host, *args, **kwargs)

socket.getaddrinfo = loopback_only

import datasets

datasets.disable_progress_bars()
# The dataset viewer lives on another host (datasets-server.<endpoint host>) that a local fake
# cannot serve; without this `datasets` looks it up and falls back to reading the repo anyway.
datasets.config.USE_PARQUET_EXPORT = False
out = {"attempts": attempts, "sources": {}}
for source in sys.argv[1:]:
    loaded = {}
    names = datasets.get_dataset_config_names(source)
    for name in names:
        ds = datasets.load_dataset(source, name, split="train")
        loaded[name] = {
            "rows": ds.num_rows,
            "columns": ds.column_names,
            "ts": str(ds.features["ts"].dtype) if "ts" in ds.features else None,
        }
    out["sources"][source] = loaded
print(json.dumps(out))
"""


def test_every_config_loads_from_hub_and_folder(
    fake_hub: FakeHub, make_silver, stage_dataset, hub_token: str, tmp_path: Path
) -> None:
    staging = tmp_path / "stage"
    manifest = stage_dataset(make_silver(3), staging)
    publish_to_hub(
        staging, manifest, repo_id=REPO, token=SecretStr(hub_token), endpoint=fake_hub.url
    )
    folder = tmp_path / "dataset"
    publish_to_local(staging, manifest, local_dir=folder)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))} | {
        "HF_ENDPOINT": fake_hub.url,
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_DATASETS_CACHE": str(tmp_path / "hf_datasets"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_UPDATE_DOWNLOAD_COUNTS": "0",  # else `datasets` pings an S3 bucket per load
    }
    done = subprocess.run(
        [sys.executable, "-c", LOADER, REPO, str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["attempts"] == []

    expected = {c.config: c for c in manifest.configs}
    for source in (REPO, str(folder)):
        loaded = result["sources"][source]
        assert list(loaded) == list(expected), source
        for name, stats in expected.items():
            assert loaded[name]["rows"] == stats.rows, (source, name)
            assert loaded[name]["columns"] == [c for c, _ in stats.columns], (source, name)
            if stats.interval or name in ("funding", "open_interest"):
                assert loaded[name]["ts"] == "timestamp[ms, tz=UTC]", (source, name)
    hub_reads = [r for r in fake_hub.requests if "/resolve/" in r.path and r.method == "GET"]
    assert len({r.path.rsplit("/", 2)[-2] for r in hub_reads if "/data/" in r.path}) == 9
