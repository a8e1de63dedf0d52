"""A process-local progress hook so the CLI can draw bars while flows run in-process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Progress:
    """Running totals of one layer's work in this process."""

    stage: str = ""
    total: int = 0
    done: int = 0
    failed: int = 0
    rows: int = 0
    requests: int = 0
    extra: dict[str, int] = field(default_factory=dict)
    reported: int = 0  # partitions the tasks reported as each of their days ended
    finished: int = 0  # partitions of the tasks that have ended

    def report(self, partitions: int) -> None:
        """A task body reported partitions finished (`tasks.runtime.partitions_done`)."""
        self.reported += partitions
        self._count()

    def task_ended(self, partitions: int) -> None:
        """A task holding `partitions` ended (whether or not its body reported them)."""
        self.finished += partitions
        self._count()

    def _count(self) -> None:
        # Both are lower bounds (a retry reports its days again): the larger, capped.
        self.done = min(self.total, max(self.finished, self.reported))


Listener = Callable[[Progress], None]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> Callable[[], None]:
    """Register a listener; returns a function that removes it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


def publish(progress: Progress) -> None:
    for listener in list(_listeners):
        listener(progress)
