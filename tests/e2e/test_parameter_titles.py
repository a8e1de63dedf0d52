"""Deployment forms show parameter titles, not raw names (Prefect forces title = name; a
`title` in `json_schema_extra`, applied last, overrides it: `flows.params.titled`)."""

from __future__ import annotations

from typing import Any

from prefect.utilities.callables import parameter_schema

from flows.backfill import backfill_flow
from flows.daily import daily_flow
from flows.gold import gold_flow
from flows.silver import silver_flow


def schema(flow: Any) -> dict[str, Any]:
    return dict(parameter_schema(flow).model_dump())


def test_scalar_parameters_carry_their_titles_and_constraints() -> None:
    backfill = schema(backfill_flow)["properties"]
    assert backfill["chunk_days"]["title"] == "Chunk days"
    assert backfill["chunk_days"]["minimum"] == 0
    assert backfill["max_chunk_runs"]["title"] == "Max chunk runs"
    assert (backfill["max_chunk_runs"]["minimum"], backfill["max_chunk_runs"]["maximum"]) == (1, 64)
    assert backfill["max_chunk_runs"]["default"] == 2
    assert {k: v["title"] for k, v in schema(daily_flow)["properties"].items()} == {
        "day": "Day",
        "publish": "Publish",
    }
    assert {k: v["title"] for k, v in schema(gold_flow)["properties"].items()} == {
        "repo_id": "Hugging Face repo",
        "local_dir": "Local folder",
        "dry_run": "Dry run",
        "allow_shrink": "Allow shrink",
    }


def test_the_selection_model_shows_its_own_titles() -> None:
    for flow in (backfill_flow, silver_flow):
        full = schema(flow)
        selection = full["properties"]["selection"]
        # the raw name is gone; the form takes the referenced model's title, "Selection"
        assert selection.get("title", "Selection") == "Selection"
        assert selection["$ref"] == "#/definitions/Selection"
        definition = full["definitions"]["Selection"]
        assert definition["title"] == "Selection"
        assert definition["properties"]["start"]["title"] == "Start"
        assert definition["properties"]["perp_symbols"]["title"] == "Perpetual symbols"
