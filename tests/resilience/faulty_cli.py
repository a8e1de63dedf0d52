"""Runs the `crypto-pipeline` CLI in a subprocess with one fault injected by the test harness
(production code has no test hooks), chosen by `RESILIENCE_FAULT`:

* `enospc-compact`: compacting the coverage index fails with ENOSPC (a full disk);
* `silver-raise`: building any silver partition raises (`SilverDaysFailed` after retries).
"""

from __future__ import annotations

import errno
import os
import sys

FAULT = os.environ.get("RESILIENCE_FAULT", "")

if FAULT == "enospc-compact":
    from storage.coverage import CoverageIndex

    def _full_disk(self: CoverageIndex) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    CoverageIndex.compact = _full_disk  # type: ignore[method-assign]

if FAULT == "silver-raise":
    import tasks.silver_day

    def _broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("injected: silver partition build broke")

    tasks.silver_day.write_partition = _broken  # type: ignore[assignment]

if __name__ == "__main__":
    from flows.cli import main

    sys.exit(main(sys.argv[1:]))
