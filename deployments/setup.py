"""Create the work pool and (optionally) the HF token Secret block on a Prefect server.

    python -m deployments.setup [--pool crypto-pipeline] [--type process] [--hf-token-from-env]

Idempotent: an existing pool or block is left as it is (the block is overwritten only with
`--hf-token-from-env`, reading `HF_TOKEN`; the token is never printed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

DEFAULT_POOL = "crypto-pipeline"


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
    parser.add_argument("--hf-token-from-env", action="store_true")
    parser.add_argument("--hf-token-block", default="hf-token")
    args = parser.parse_args(argv)
    created = asyncio.run(ensure_work_pool(args.pool, args.type))
    print(f"work pool {args.pool!r} ({args.type}): {'created' if created else 'exists'}")
    if args.hf_token_from_env:
        if save_hf_token_block(args.hf_token_block):
            print(f"secret block {args.hf_token_block!r}: saved from HF_TOKEN")
        else:
            print("HF_TOKEN is not set; no secret block saved", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
