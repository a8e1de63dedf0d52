"""The sandbox aiohttp application, a background-thread server for tests, and the CLI entry."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import socket
import struct
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from sandbox import archive, binance, coinbase, okx
from sandbox.common import ApiError, json_response
from sandbox.config import FAULT_PROFILES, RATE_LIMIT_MODES, SandboxConfig
from sandbox.faults import Fault
from sandbox.limits import Decision, WeightLimiter
from sandbox.state import OKX_LIMITS, STATE, SandboxState

CONTROL_PREFIX = "/__sandbox__"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def exchange_of(path: str) -> str | None:
    """Which emulated exchange a path belongs to (their real paths do not collide)."""
    if path.startswith(("/api/v3/", "/fapi/", "/futures/data/")):
        return "binance"
    if path.startswith("/api/v5/"):
        return "okx"
    if path.startswith(("/products", "/currencies", "/time")):
        return "coinbase"
    return None


# --------------------------------------------------------------------------- answers


def _binance_headers(limiter: WeightLimiter, now: float) -> dict[str, str]:
    used = str(limiter.current(now))
    return {"X-MBX-USED-WEIGHT-1M": used, "X-MBX-USED-WEIGHT": used}


def _rate_limited(exchange: str, decision: Decision, limiter: WeightLimiter | None) -> web.Response:
    headers = {"Retry-After": str(decision.retry_after)} if decision.retry_after else {}
    if exchange == "binance":
        capacity = limiter.capacity if limiter else binance.SPOT_WEIGHT_LIMIT
        if decision.status == 418:
            return json_response(binance.ban_body(decision.banned_until_ms), 418, headers)
        return json_response(binance.rate_limit_body(capacity), 429, headers)
    if exchange == "okx":
        return json_response(okx.RATE_LIMIT_BODY, 429, headers)
    return json_response(coinbase.RATE_LIMIT_BODY, 429, headers)


def _server_error(exchange: str, variant: int) -> web.Response:
    if exchange == "binance":
        if variant:
            return web.Response(
                text="<html><body><h1>502 Bad Gateway</h1></body></html>",
                status=502,
                content_type="text/html",
            )
        return json_response(binance.UNAVAILABLE.body, 503)
    if exchange == "okx":
        if variant:
            return json_response(
                {"code": "50026", "data": [], "msg": "System error. Try again later."}, 500
            )
        return json_response(okx.UNAVAILABLE.body, 503)
    if variant:
        return json_response({"message": "Service Unavailable"}, 503)
    return json_response({"message": "Internal Server Error"}, 500)


def _reset_connection(request: web.Request) -> None:
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _truncated(response: web.Response) -> web.Response:
    body = response.body if isinstance(response.body, bytes) else b""
    return web.Response(
        body=body[: max(1, len(body) // 2)],
        status=response.status,
        headers={k: v for k, v in response.headers.items() if k.lower() != "content-length"},
    )


# What Binance's web application firewall answers (HTTP 403): an HTML page, not JSON.
FIREWALL_PAGE = (
    "<html><head><title>403 Forbidden</title></head><body><center><h1>403 Forbidden</h1>"
    "</center><hr><center>Request blocked by the web application firewall</center></body></html>"
)


# --------------------------------------------------------------------------- middleware


def _limit_check(
    state: SandboxState, exchange: str, request: web.Request, weight: int
) -> tuple[Decision, WeightLimiter | None]:
    """Enforce (or, with limits off, only account) the exchange's rate limits."""
    path = request.path
    now = state.now_s()
    if exchange == "binance":
        limiter = state.binance_futures if binance.is_futures(path) else state.binance_spot
        if not state.limits_on:
            limiter.record(weight, now)
            return Decision(), limiter
        decision = limiter.check(weight, now)
        if decision.status == 0 and path in binance.FUNDING_PATHS:
            funding = state.binance_funding.check("ip", now)
            if funding.status:
                return Decision(429, funding.retry_after, decision.used), limiter
        return decision, limiter
    if not state.limits_on:
        return Decision(), None
    if exchange == "okx":
        window = state.okx.get(path)
        if window is None:
            return Decision(), None
        keyed = OKX_LIMITS[path][1]
        key = okx.instrument_key(path, request.query) if keyed else ""
        decision = window.check(key, now)
        return Decision(decision.status), None  # OKX sends no Retry-After
    return Decision(state.coinbase.check(now).status), None


@web.middleware
async def sandbox_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    exchange = exchange_of(request.path)
    if exchange is None:
        return await handler(request)
    state = request.app[STATE]
    route = request.match_info.route.resource
    state.count(exchange, route.canonical if route is not None else request.path)
    weight = binance.weight(request.path, request.query) if exchange == "binance" else 0
    fault: Fault = state.faults.draw(exchange)
    if fault.delay_s:
        await asyncio.sleep(fault.delay_s)
    decision, limiter = _limit_check(state, exchange, request, weight)
    extra = _binance_headers(limiter, state.now_s()) if limiter is not None else {}
    response: web.StreamResponse
    if decision.status:
        state.add(exchange, "rate_limited")
        response = _rate_limited(exchange, decision, limiter)
    elif fault.kind == "rate_limit":
        state.add(exchange, "rate_limited")
        state.add(exchange, "faults")
        response = _rate_limited(exchange, Decision(429, 1), limiter)
    elif fault.kind == "server_error":
        state.add(exchange, "errors")
        state.add(exchange, "faults")
        response = _server_error(exchange, fault.variant)
    elif fault.kind == "firewall":
        state.add(exchange, "errors")
        state.add(exchange, "faults")
        response = web.Response(status=403, text=FIREWALL_PAGE, content_type="text/html")
    elif fault.kind == "reset":
        state.add(exchange, "faults")
        _reset_connection(request)
        return web.Response(status=500)
    else:
        state.add(exchange, "weight", weight)
        try:
            response = await handler(request)
        except ApiError as exc:
            state.add(exchange, "errors")
            response = json_response(exc.body, exc.status, exc.headers)
        except web.HTTPException as exc:
            state.add(exchange, "errors")
            exc.headers.update(extra)
            raise
        if fault.kind == "truncate" and isinstance(response, web.Response):
            state.add(exchange, "faults")
            response = _truncated(response)
    response.headers.update(extra)
    return response


# --------------------------------------------------------------------------- control


async def control_stats(request: web.Request) -> web.Response:
    return json_response(request.app[STATE].stats())


async def control_reset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.reset_stats()
    state.reset_limits()
    return json_response({"ok": True})


async def control_config(request: web.Request) -> web.Response:
    config = request.app[STATE].config
    return json_response(
        {
            "seed": config.seed,
            "faults": config.faults,
            "rate_limits": config.rate_limits,
            "fail": sorted(map(list, config.fail)),
            "empty": sorted([e, s, d.isoformat()] for e, s, d in config.empty),
        }
    )


def create_app(config: SandboxConfig | None = None) -> web.Application:
    """The sandbox application serving every emulated exchange on one port."""
    app = web.Application(middlewares=[sandbox_middleware])
    app[STATE] = SandboxState(config or SandboxConfig())
    app.add_routes(binance.routes())
    app.add_routes(okx.routes())
    app.add_routes(coinbase.routes())
    archive.install(app, app[STATE].config)  # data.binance.vision paths (/data/...)
    app.add_routes(
        [
            web.get(f"{CONTROL_PREFIX}/stats", control_stats),
            web.post(f"{CONTROL_PREFIX}/reset", control_reset),
            web.get(f"{CONTROL_PREFIX}/config", control_config),
        ]
    )
    return app


# --------------------------------------------------------------------------- servers


class SandboxServer:
    """The sandbox on 127.0.0.1 (ephemeral port by default) in a background thread.

    >>> with SandboxServer(SandboxConfig(seed=7)) as server:
    ...     server.url  # e.g. http://127.0.0.1:54321
    """

    def __init__(
        self, config: SandboxConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or SandboxConfig()
        self.host = host
        self.port = port
        self.app = create_app(self.config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def state(self) -> SandboxState:
        return self.app[STATE]

    @property
    def url(self) -> str:
        if not self._ready.is_set():
            raise RuntimeError("sandbox server is not running")
        return f"http://{self.host}:{self.port}"

    def start(self) -> SandboxServer:
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="sandbox-exchange", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=30)
        if self._error is not None or not self._ready.is_set():
            self._thread.join(timeout=5)
            self._thread = None
            raise RuntimeError(f"sandbox server failed to start: {self._error!r}")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        if self.app.frozen:  # restarted: a fresh app on the new loop, same state
            state = self.app[STATE]
            self.app = create_app(self.config)
            self.app[STATE] = state
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
            loop.run_until_complete(site.start())
            server = site._server
            sockets = getattr(server, "sockets", None) or []
            self.port = sockets[0].getsockname()[1]
        except BaseException as exc:
            self._error = exc
            loop.run_until_complete(runner.cleanup())
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._thread = None
        self._ready.clear()

    def _call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop thread (the counters live there)."""
        if self._loop is None or not self._ready.is_set():
            return fn()

        async def call() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout=30)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per exchange: requests, weight, rate_limited, errors, faults, by_path."""
        return self._call(self.state.stats)  # type: ignore[no-any-return]

    def reset_stats(self) -> None:
        """Zero the counters and the rate-limit state."""

        def reset() -> None:
            self.state.reset_stats()
            self.state.reset_limits()

        self._call(reset)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(host: str = "127.0.0.1", port: int = 8700, config: SandboxConfig | None = None) -> None:
    """Serve the sandbox until interrupted (the ``crypto-pipeline sandbox`` command).

    Prints one line naming the URL (with the real port when ``port`` is 0) once it listens.
    """
    config = config or SandboxConfig()

    async def run() -> None:
        runner = web.AppRunner(create_app(config), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        print(
            f"sandbox exchange on http://{host}:{bound} (seed {config.seed}, faults "
            f"{config.faults}, rate limits {config.rate_limits}); "
            f"set CRYPTO_PIPELINE_SANDBOX_URL=http://{host}:{bound}",
            flush=True,
        )
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


class SandboxProcess:
    """The sandbox in a child process (its CPU work stays off the caller's GIL).

    Same surface as :class:`SandboxServer` (``url``, ``stats()``, ``reset_stats()``,
    ``start()``/``stop()``, context manager); only seed, faults and rate limits are passed on.
    """

    def __init__(self, config: SandboxConfig | None = None, *, host: str = "127.0.0.1") -> None:
        self.config = config or SandboxConfig()
        if self.config.fail or self.config.empty or self.config.clock is not None:
            raise ValueError("SandboxProcess supports seed, faults and rate_limits only")
        if self.config.rate_limit_scale != 1.0:
            raise ValueError("SandboxProcess supports seed, faults and rate_limits only")
        self.host = host
        self._process: subprocess.Popen[str] | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("sandbox process is not running")
        return self._url

    def start(self) -> SandboxProcess:
        if self._process is not None:
            return self
        command = [
            sys.executable, "-m", "sandbox", "--host", self.host, "--port", "0",
            "--seed", str(self.config.seed), "--faults", self.config.faults,
            "--rate-limits", self.config.rate_limits,
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, text=True, cwd=str(Path(__file__).parents[2])
        )
        line = self._process.stdout.readline() if self._process.stdout else ""
        match = re.search(r"on (http://\S+)", line)
        if match is None:
            self.stop()
            raise RuntimeError(f"sandbox process failed to start: {line!r}")
        self._url = match.group(1)
        return self

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        if self._process.stdout:
            self._process.stdout.close()
        self._process = None
        self._url = None

    def stats(self) -> dict[str, dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}{CONTROL_PREFIX}/stats", timeout=30) as answer:
            return json.loads(answer.read())  # type: ignore[no-any-return]

    def reset_stats(self) -> None:
        request = urllib.request.Request(f"{self.url}{CONTROL_PREFIX}/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30):
            pass

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def add_sandbox_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``sandbox`` command's options."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8700, help="port to bind (default 8700)")
    parser.add_argument("--seed", type=int, default=7, help="data seed (default 7)")
    parser.add_argument("--faults", choices=FAULT_PROFILES, default="none", help="fault profile")
    parser.add_argument(
        "--rate-limits", choices=RATE_LIMIT_MODES, default="off", help="enforce real rate limits"
    )


def config_from_args(ns: argparse.Namespace) -> SandboxConfig:
    return SandboxConfig(seed=ns.seed, faults=ns.faults, rate_limits=ns.rate_limits)
