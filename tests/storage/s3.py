"""A real S3 endpoint for tests: moto's server on loopback, plus helpers.

Importable from any test directory (`from tests.storage.s3 import ...`).
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

S3_ENV_KEYS = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)


@dataclass(frozen=True)
class S3Endpoint:
    """A running S3-compatible endpoint and the AWS variables that reach it."""

    url: str

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def create_bucket(self, name: str | None = None) -> str:
        bucket = name or f"test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=bucket)
        return bucket


@contextmanager
def moto_s3() -> Iterator[S3Endpoint]:
    """Run moto's S3 server on 127.0.0.1 with an ephemeral port for the duration."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield S3Endpoint(url=f"http://{host}:{port}")
    finally:
        server.stop()


@contextmanager
def aws_env(endpoint: S3Endpoint) -> Iterator[None]:
    """Point the standard AWS variables at `endpoint`, restoring them afterwards."""
    saved = {k: os.environ.get(k) for k in S3_ENV_KEYS}
    for key in S3_ENV_KEYS:
        os.environ.pop(key, None)
    os.environ.update(endpoint.env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class CuttingProxy:
    """TCP proxy in front of an endpoint that can sever uploads part-way.

    While `cut_after` is set, any connection that has sent more than that many bytes to the
    server since the cut was armed is closed abruptly: the server receives a truncated request.
    """

    def __init__(self, target_url: str) -> None:
        host, port = target_url.removeprefix("http://").split(":")
        self._target = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.cut_after: int | None = None
        self.cuts = 0
        self._generation = 0
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def arm(self, cut_after: int) -> None:
        self._generation += 1
        self.cut_after = cut_after

    def disarm(self) -> None:
        self.cut_after = None

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            threading.Thread(target=self._pump_up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump_down, args=(upstream, client), daemon=True).start()

    def _pump_up(self, client: socket.socket, upstream: socket.socket) -> None:
        sent, generation = 0, self._generation
        try:
            while chunk := client.recv(65536):
                if self._generation != generation:
                    sent, generation = 0, self._generation
                limit = self.cut_after
                if limit is not None and sent + len(chunk) > limit:
                    upstream.sendall(chunk[: max(0, limit - sent)])
                    self.cuts += 1
                    break
                upstream.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        _close(client, upstream)

    @staticmethod
    def _pump_down(upstream: socket.socket, client: socket.socket) -> None:
        try:
            while chunk := upstream.recv(65536):
                client.sendall(chunk)
        except OSError:
            pass
        _close(client, upstream)


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
