"""Process-wide runtime helpers of the task bodies."""

from __future__ import annotations

import gc
import subprocess
import sys

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


def test_the_run_logger_outside_prefect_does_not_import_it() -> None:
    """A direct (Prefect-free) run asks for the run logger: the answer is the module logger,
    and Prefect stays unimported (its import costs ~1.7 s of CPU)."""
    code = (
        "import sys; from tasks.runtime import run_logger; log = run_logger(); "
        "assert log.name == 'crypto_pipeline', log; "
        "assert 'prefect' not in sys.modules, 'prefect imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
