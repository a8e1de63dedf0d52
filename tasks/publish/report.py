"""The outcome of one publish, readable as a Prefect markdown artifact."""

from __future__ import annotations

from dataclasses import dataclass

from tasks.publish.diff import ChangePlan

_LISTED = 50


@dataclass(frozen=True)
class PublishReport:
    target: str
    added: tuple[str, ...]
    changed: tuple[str, ...]
    deleted: tuple[str, ...]
    unchanged: int
    bytes_uploaded: int
    commit_sha: str | None
    commit_url: str | None
    dry_run: bool
    shrunk: tuple[str, ...] = ()  # configs published smaller on purpose (allow_shrink)

    @classmethod
    def from_plan(
        cls,
        target: str,
        plan: ChangePlan,
        *,
        dry_run: bool,
        commit_sha: str | None = None,
        commit_url: str | None = None,
        shrunk: tuple[str, ...] = (),
    ) -> PublishReport:
        return cls(
            target=target,
            added=tuple(f.repo_path for f in plan.added),
            changed=tuple(f.repo_path for f in plan.changed),
            deleted=plan.deleted,
            unchanged=len(plan.unchanged),
            bytes_uploaded=0 if dry_run else plan.upload_bytes,
            commit_sha=commit_sha,
            commit_url=commit_url,
            dry_run=dry_run,
            shrunk=shrunk,
        )

    def line(self) -> str:
        """One line for the CLI."""
        return (
            f"{self.target}: {len(self.added)} added, {len(self.changed)} changed, "
            f"{len(self.deleted)} deleted, {self.unchanged} unchanged, "
            f"{self.bytes_uploaded:,} bytes" + (" (dry run)" if self.dry_run else "")
        )

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.changed or self.deleted)

    def to_markdown(self) -> str:
        mode = " (dry run: nothing written)" if self.dry_run else ""
        if self.commit_url:
            outcome = f"commit [`{(self.commit_sha or '')[:12]}`]({self.commit_url})"
        elif self.has_changes and not self.dry_run:
            outcome = "files written"
        else:
            outcome = "nothing to publish" if not self.has_changes else "would publish"
        lines = [
            f"# Publish to `{self.target}`{mode}",
            "",
            f"- outcome: {outcome}",
            f"- added: {len(self.added)}, changed: {len(self.changed)}, "
            f"deleted: {len(self.deleted)}, unchanged: {self.unchanged}",
            f"- bytes uploaded: {self.bytes_uploaded:,}",
        ]
        if self.shrunk:
            lines += ["", "## Shrunk on purpose (allow_shrink)", ""]
            lines += [f"- {line}" for line in self.shrunk]
        for title, paths in (
            ("Added", self.added),
            ("Changed", self.changed),
            ("Deleted", self.deleted),
        ):
            if paths:
                lines += ["", f"## {title}", ""]
                lines += [f"- `{p}`" for p in paths[:_LISTED]]
                if len(paths) > _LISTED:
                    lines.append(f"- … and {len(paths) - _LISTED} more")
        return "\n".join(lines) + "\n"
