"""Process-wide runtime helpers of the task bodies."""

from __future__ import annotations

import gc

import pytest

from tasks import runtime


def test_settle_heap_freezes_what_exists_once_per_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gc.unfreeze()
    monkeypatch.setattr(runtime, "_heap_settled", False)
    try:
        runtime.settle_heap()
        frozen = gc.get_freeze_count()
        assert frozen > 1000  # the start-up heap: modules, classes, functions
        later = [[i] for i in range(5000)]  # objects made during the data work
        runtime.settle_heap()
        # not frozen: still collectable (the count may drop: frozen objects that other threads
        # of the test process free leave the permanent generation)
        assert gc.get_freeze_count() <= frozen
        assert later
    finally:
        gc.unfreeze()
