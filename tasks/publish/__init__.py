"""Gold layer: the published dataset's layout, card, and publishing to the Hub or a folder.

Typical use: `build_layout` → `render_card` → `Manifest.with_card` →
`publish_to_hub` or `publish_to_local`. Both publishers refuse an empty build, and a build with
fewer files or rows than the target for any config unless `allow_shrink` (`tasks.publish.guard`).
"""

from tasks.publish.card import render_card
from tasks.publish.hub import publish_to_hub
from tasks.publish.layout import build_layout
from tasks.publish.local import publish_to_local
from tasks.publish.manifest import (
    ConfigStats,
    Manifest,
    ManifestFile,
    PublishError,
)
from tasks.publish.report import PublishReport

__all__ = [
    "ConfigStats",
    "Manifest",
    "ManifestFile",
    "PublishError",
    "PublishReport",
    "build_layout",
    "publish_to_hub",
    "publish_to_local",
    "render_card",
]
