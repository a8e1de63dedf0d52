"""Runs the `crypto-pipeline` CLI (`flows.cli.main`) in a subprocess, optionally with slow writes.

With `RESILIENCE_SLOW_FSYNC=<seconds>`, every fsync of a warehouse temp file (`*.tmp`) waits that
long first, so a test can SIGKILL the process while a write is in flight. The patch lives here,
in the test harness; production code has no test hooks.
"""

from __future__ import annotations

import os
import sys
import time

_DELAY = float(os.environ.get("RESILIENCE_SLOW_FSYNC", "0") or 0)

if _DELAY > 0:
    _real_fsync = os.fsync

    def _slow_fsync(fd: int) -> None:
        try:
            name = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            name = ""
        if name.endswith(".tmp"):
            time.sleep(_DELAY)
        _real_fsync(fd)

    os.fsync = _slow_fsync

if __name__ == "__main__":
    from flows.cli import main

    sys.exit(main(sys.argv[1:]))
