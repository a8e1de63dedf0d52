"""Offline sandbox exchange: Binance (spot + USD-M), Coinbase Exchange and OKX public REST APIs.

``SandboxServer(SandboxConfig(...))`` runs it in a background thread on an ephemeral port for
tests; ``serve()`` runs it in the foreground for the ``crypto-pipeline sandbox`` command.
"""

from clients.sandbox.config import SandboxConfig
from clients.sandbox.server import (
    SandboxServer,
    add_sandbox_arguments,
    config_from_args,
    create_app,
    serve,
)

__all__ = [
    "SandboxConfig",
    "SandboxServer",
    "add_sandbox_arguments",
    "config_from_args",
    "create_app",
    "serve",
]
