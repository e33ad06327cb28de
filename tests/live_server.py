"""Run an ASGI app under a real uvicorn on a free loopback port, for tests that need real sockets.

A browser, a WebSocket client or a second process cannot talk to an in-process ASGI transport,
so this starts uvicorn in a background thread with its own event loop, runs the app's lifespan,
and stops it on exit::

    with LiveServer(create_app(settings)) as server:
        httpx.get(f"{server.url}/healthz")
        websockets.connect(f"{server.ws_url}/graphql", subprotocols=["graphql-transport-ws"])

From an async test, `async with LiveServer(app) as server:` does the same without blocking the
test's event loop while uvicorn starts and stops.

`server_processes(env, count)` starts real server processes instead (`tandem serve`, one worker
each), for tests where instances must share nothing but the database and Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from app.http_protocol import CoalescingHttpToolsProtocol

_HOST = "127.0.0.1"
_ROOT = Path(__file__).resolve().parents[1]


class LiveServer:
    """uvicorn serving `app` on 127.0.0.1 with a port chosen by the kernel."""

    def __init__(
        self, app: ASGIApp, *, startup_timeout: float = 20.0, shutdown_timeout: float = 10.0
    ) -> None:
        self.app = app
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{_HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{_HOST}:{self.port}"

    def start(self) -> None:
        # Bind here rather than ask uvicorn for port 0: the port is known before the thread
        # starts, and nothing else can take it between choosing and listening.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((_HOST, 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="on",  # a lifespan that fails must fail the test, not be skipped as "auto" would
            log_level="warning",
            access_log=False,
            # Open WebSocket connections must not hold up the end of a test for long.
            timeout_graceful_shutdown=2,
            http=CoalescingHttpToolsProtocol,  # as `tandem serve` runs
        )
        server = uvicorn.Server(config)
        # uvicorn installs signal handlers only on the main thread, so this thread leaves
        # Ctrl-C to pytest.
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="live-server", daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + self.startup_timeout
        # `started` turns true once the lifespan startup has completed and the socket listens.
        while not server.started:
            if not thread.is_alive():
                sock.close()
                raise RuntimeError(
                    "uvicorn exited during startup; its log above says why (lifespan failure?)"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"uvicorn did not start within {self.startup_timeout} s")
            time.sleep(0.02)

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(self.shutdown_timeout)
        if thread.is_alive():
            # Graceful shutdown is stuck (a connection that never closes): cut it short.
            server.force_exit = True
            thread.join(self.shutdown_timeout)
        self._server = self._thread = None
        if thread.is_alive():
            raise RuntimeError(f"uvicorn did not stop within {2 * self.shutdown_timeout} s")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def server_processes(env: dict[str, str], count: int, *, startup_timeout: float = 60) -> Iterator[list[str]]:
    """`count` server processes configured by `env` (`TANDEM_*`, on top of this process's environment),
    each answering `/healthz`; yields their base URLs and stops them afterwards."""
    with _serving(env, count, startup_timeout) as running:
        yield [url for url, _ in running]


@contextlib.contextmanager
def server_process(env: dict[str, str], *, startup_timeout: float = 60, workers: int = 1) -> Iterator[tuple[str, int]]:
    """One `tandem serve` process (with `workers`: `--workers`): its base URL and its process id (to
    read its `/proc` counters, or signal it)."""
    with _serving(env, 1, startup_timeout, workers) as running:
        yield running[0]


def wait_for_exit(pid: int) -> None:
    """Until the server process `pid` (one of ours) has exited."""
    os.waitpid(pid, 0)


@contextlib.contextmanager
def _serving(env: dict[str, str], count: int, startup_timeout: float,
             workers: int = 1) -> Iterator[list[tuple[str, int]]]:
    ports = [_free_port() for _ in range(count)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--host", _HOST, "--port", str(port), "--workers", str(workers)],
            cwd=_ROOT, env={**os.environ, "TANDEM_LOG_LEVEL": "WARNING", **env},
        )
        for port in ports
    ]
    urls = [f"http://{_HOST}:{port}" for port in ports]
    try:
        deadline = time.monotonic() + startup_timeout
        for url, process in zip(urls, processes, strict=True):
            while True:
                if process.poll() is not None:
                    pytest.fail(f"the server on {url} exited with {process.returncode}", pytrace=False)
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    pytest.fail(f"the server on {url} did not start within {startup_timeout} s", pytrace=False)
                time.sleep(0.1)
        yield [(url, process.pid) for url, process in zip(urls, processes, strict=True)]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
