"""Titles for flow parameters in a deployment's form.

Prefect builds a flow's parameter schema with `Field(title=<parameter name>)`, overriding any
`title` a parameter declares; the parameter's `json_schema_extra` is merged in and applied
last, so a `title` there is the one the schema (and the UI form) shows. Fields of a pydantic
model parameter (`Selection`) keep their own titles in the schema's definitions.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field


def titled(title: str, **field: Any) -> Any:
    """`Field(**field)` whose title survives Prefect's parameter schema."""
    return Field(title=title, json_schema_extra={"title": title}, **field)
