"""Progress of a run's stages: the one channel from the units of work to whoever listens
(the CLI's bars, a flow's progress artifact).

A stage's `Progress` is handed to the units of work it counts; they report partitions as each
day ends. Listeners subscribed in this process see every change.
"""

from __future__ import annotations

from collections.abc import Callable


class Progress:
    """Running totals of one stage (bronze, silver) of a run.

    A plain class, not a dataclass: it is handed to Prefect tasks as a parameter, and Prefect
    rebuilds dataclasses and models it finds in parameters, which would cut the link.
    """

    def __init__(self, stage: str, total: int = 0) -> None:
        self.stage = stage
        self.total = total
        self.done = 0
        self.failed = 0
        self.rows = 0
        self.requests = 0
        self.reported = 0  # partitions the units reported as each of their days ended
        self.finished = 0  # partitions of the units that have ended

    def __repr__(self) -> str:
        return f"Progress({self.stage!r}, {self.done}/{self.total}, failed={self.failed})"

    def report(self, partitions: int) -> None:
        """A unit of work finished `partitions` (written or failed) of one day."""
        self.reported += partitions
        self._count()

    def unit_ended(self, partitions: int, failed: int = 0) -> None:
        """A unit holding `partitions` ended (whether or not it reported them)."""
        self.finished += partitions
        self.failed += failed
        self._count()

    def update(self, *, rows: int | None = None, requests: int | None = None) -> None:
        if rows is not None:
            self.rows = rows
        if requests is not None:
            self.requests = requests
        publish(self)

    def _count(self) -> None:
        # Both are lower bounds (a retry reports its days again): the larger, capped.
        self.done = min(self.total, max(self.finished, self.reported))
        publish(self)


Listener = Callable[[Progress], None]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> Callable[[], None]:
    """Register a listener for every stage's changes; returns a function that removes it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


def publish(progress: Progress) -> None:
    for listener in list(_listeners):
        listener(progress)
