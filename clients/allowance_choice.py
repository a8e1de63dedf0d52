"""Which allowance backend a setting names (`CRYPTO_PIPELINE_ALLOWANCE`): one per process and
choice, a shared one checked at once."""

from __future__ import annotations

import logging
import threading

from clients.allowance import AllowanceBackend, AllowanceUnavailable, LocalAllowance
from clients.redis_allowance import RedisAllowance
from models.settings import local_share, validate_allowance

log = logging.getLogger(__name__)

_BACKENDS: dict[tuple[str, int], AllowanceBackend] = {}
_BACKENDS_LOCK = threading.Lock()


def allowance_backend(
    choice: str | AllowanceBackend | None = None, *, fallback_processes: int = 0
) -> AllowanceBackend:
    """The backend named by `choice` (`CRYPTO_PIPELINE_ALLOWANCE`), one per process and choice.

    A Redis backend is checked at once: unreachable, it raises `AllowanceUnavailable` naming the
    setting and URL, unless `fallback_processes` > 0 asks for `local/N` instead (logged).
    """
    if isinstance(choice, AllowanceBackend):
        return choice
    text = validate_allowance(choice or "local")
    with _BACKENDS_LOCK:
        found = _BACKENDS.get((text, fallback_processes))
        if found is None:
            found = _build(text, fallback_processes)
            _BACKENDS[(text, fallback_processes)] = found
        return found


def _build(text: str, fallback_processes: int) -> AllowanceBackend:
    share = local_share(text)
    if share is not None:
        return LocalAllowance(share)
    backend = RedisAllowance(text)
    try:
        backend.check()
    except AllowanceUnavailable as exc:
        if fallback_processes < 1:
            raise
        log.warning(
            "%s; falling back to local/%d: each process takes 1/%d of every allowance",
            exc,
            fallback_processes,
            fallback_processes,
        )
        return LocalAllowance(fallback_processes)
    log.info("rate-limit allowance shared through %s", backend.description)
    return backend
