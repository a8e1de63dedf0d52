"""Gold flow: build the dataset layout from silver and publish only what changed."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from prefect import flow
from prefect.artifacts import acreate_markdown_artifact

from flows.entry import run_settings
from flows.params import titled
from models.enums import Layer
from models.settings import Settings, hf_token, validate_repo_id
from storage import SILVER_DATASETS, Warehouse
from tasks.publish.report import PublishReport


def publish_dataset(
    settings: Settings,
    *,
    repo_id: str | None,
    local_dir: str | None,
    dry_run: bool = False,
    endpoint: str | None = None,
    allow_shrink: bool = False,
) -> Any:
    """Build the layout in a staging folder and publish it; returns a `PublishReport`.

    `repo_id` publishes to the Hub (token from HF_TOKEN or a Prefect Secret block); else the
    layout goes to `local_dir` (default: the settings' publish folder).
    """
    from storage.planning import source_states
    from tasks.publish.card import render_card
    from tasks.publish.hub import publish_to_hub
    from tasks.publish.layout import build_layout
    from tasks.publish.local import publish_to_local

    warehouse = Warehouse.from_settings(settings)
    silver = {name: warehouse.scan(Layer.SILVER, name) for name in SILVER_DATASETS}
    coverage = warehouse.coverage.query(layer=Layer.SILVER)
    staging = Path(tempfile.mkdtemp(prefix="crypto-pipeline-gold-"))
    try:
        manifest = build_layout(silver, staging, source=settings.warehouse)
        states = source_states(warehouse, layer=Layer.SILVER)  # as `crypto-pipeline coverage`
        card = render_card(manifest, repo_id=repo_id, coverage=coverage, states=states)
        manifest = manifest.with_card(staging, card)
        if repo_id:
            return publish_to_hub(
                staging,
                manifest,
                repo_id=validate_repo_id(repo_id),
                token=hf_token(settings.hf_token_block),
                endpoint=endpoint,
                dry_run=dry_run,
                allow_shrink=allow_shrink,
            )
        target = Path(local_dir or settings.publish_dir)
        return publish_to_local(
            staging, manifest, local_dir=target, dry_run=dry_run, allow_shrink=allow_shrink
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)


async def publish_stage(
    settings: Settings,
    *,
    repo_id: str | None,
    local_dir: str | None,
    dry_run: bool = False,
    allow_shrink: bool = False,
) -> PublishReport:
    """Publish and leave a readable artifact of the diff (never the token)."""
    report: PublishReport = await asyncio.to_thread(
        publish_dataset,
        settings,
        repo_id=repo_id,
        local_dir=local_dir,
        dry_run=dry_run,
        allow_shrink=allow_shrink,
    )
    await acreate_markdown_artifact(
        report.to_markdown(), key="gold-publish", description="Files added, changed and deleted"
    )
    return report


@flow(name="gold", log_prints=False, flow_run_name="publish")
async def gold_flow(
    repo_id: Annotated[str | None, titled("Hugging Face repo")] = None,
    local_dir: Annotated[str | None, titled("Local folder")] = None,
    dry_run: Annotated[bool, titled("Dry run")] = False,
    allow_shrink: Annotated[bool, titled("Allow shrink")] = False,
) -> PublishReport:
    """Publish the dataset to a Hugging Face dataset repo, or to a local dataset folder.

    `repo_id` defaults to `CRYPTO_PIPELINE_HF_REPO_ID`; without one, the local folder
    (`local_dir`, default `CRYPTO_PIPELINE_PUBLISH_DIR`) is written. The token is never a
    parameter: it comes from HF_TOKEN or the Prefect Secret block `hf-token`. A build with fewer
    files or rows than the published dataset for any config is refused unless `allow_shrink`.

    Args:
        repo_id: Hugging Face dataset repo, ORG/NAME (default: CRYPTO_PIPELINE_HF_REPO_ID).
        local_dir: Publish to this folder instead (default: CRYPTO_PIPELINE_PUBLISH_DIR when no
            repo is set).
        dry_run: Show the diff, change nothing.
        allow_shrink: Publish even if a config would have fewer files or rows than the
            published dataset.
    """
    settings = run_settings()
    target_repo = repo_id or (None if local_dir else settings.hf_repo_id)
    return await publish_stage(
        settings,
        repo_id=target_repo,
        local_dir=local_dir,
        dry_run=dry_run,
        allow_shrink=allow_shrink,
    )
