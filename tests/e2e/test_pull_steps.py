"""The deployments' pull steps are Prefect's own and install what the code declares."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def requirement_lines(text: str) -> list[str]:
    """Requirements without comments and whitespace, normalized for comparison."""
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(re.sub(r"\s+", "", line).lower().replace("_", "-"))
    return out


def test_pull_steps_are_prefects_git_clone_then_pip_install() -> None:
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    steps = [next(iter(step)) for step in config["pull"]]
    assert steps == [
        "prefect.deployments.steps.git_clone",
        "prefect.deployments.steps.pip_install_requirements",
    ]
    clone = config["pull"][0]["prefect.deployments.steps.git_clone"]
    assert clone["repository"] == "{{ prefect.variables.crypto_pipeline_git_url }}"
    install = config["pull"][1]["prefect.deployments.steps.pip_install_requirements"]
    assert install["directory"] == "{{ clone.directory }}"
    assert (REPO / install["requirements_file"]).is_file()
    # no deployment overrides the pull steps
    assert all("pull" not in d for d in config["deployments"])


def test_worker_requirements_are_the_runtime_dependencies_of_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = requirement_lines("\n".join(project["dependencies"]))
    listed = requirement_lines((REPO / "deployments/requirements.txt").read_text())
    assert listed == declared
