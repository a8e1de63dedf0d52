"""What runs report: typed results of the bronze, silver and backfill stages, and the error a
flow ends with when some partitions failed."""

from __future__ import annotations

from dataclasses import dataclass, field

from models.selection import RunRequest
from tasks.bronze import FetchSummary
from tasks.silver_partition import SilverSummary


@dataclass
class BronzeReport:
    """A bronze stage: partitions fetched, rows stored, requests made, failures named."""

    summaries: list[FetchSummary] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    requests: dict[str, dict[str, int]] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    # each symbol rule of the request (`top:3`, `all:USDT`) -> the symbols it resolved to
    universe: dict[str, list[str]] = field(default_factory=dict)
    # the request as run, its rules resolved (None until the stage resolved it): the silver
    # stage of the same run takes this one
    request: RunRequest | None = None

    @property
    def partitions(self) -> int:
        return len(self.summaries)

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.summaries)


@dataclass
class SilverReport:
    """A silver stage: partitions and aggregates built, quality counts, failures named."""

    summaries: list[SilverSummary] = field(default_factory=list)
    aggregates: list[SilverSummary] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    instruments: int = 0  # silver instruments rows written

    @property
    def partitions(self) -> int:
        return len(self.summaries)

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.summaries)

    @property
    def quarantined(self) -> int:
        return sum(s.quarantined for s in self.summaries)

    @property
    def gaps(self) -> int:
        return sum(s.gaps for s in self.summaries)


@dataclass
class BackfillReport:
    """A backfill: its stages run here, or the chunk runs it fanned out to."""

    days: int
    bronze: BronzeReport | None = None
    silver: SilverReport | None = None
    chunks: int = 0  # child runs fanned out to (0: everything ran here)
    chunk_failures: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        stages = [s.failures for s in (self.bronze, self.silver) if s is not None]
        return [f for failures in stages for f in failures] + self.chunk_failures


class PipelineFailed(Exception):
    """A run whose partitions partly failed; names each failure."""

    @classmethod
    def raise_for(cls, layer: str, failures: list[str]) -> None:
        if failures:
            raise cls(f"{len(failures)} {layer} partition(s) failed: " + " | ".join(failures))
