"""A private `redis-server` on a free loopback port, for tests that count commands or stop Redis.

The shared Redis serves every test run on the machine, so its `INFO commandstats` counts everyone's
commands, and stopping it would break them. This one belongs to one test::

    with PrivateRedis() as server:
        before = server.calls()
        ...
        assert server.calls_since(before)["exists"] == 0
        server.stop()   # Redis is down
        server.start()  # back on the same port, empty

A missing `redis-server` binary fails the test (it never skips).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Self

import pytest
import redis

HOST = "127.0.0.1"


def free_port() -> int:
    """A loopback port nothing listens on now (for the private servers the tests start)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateRedis:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed; these tests start their own (apt-get install redis-server)",
                        pytrace=False)
        self.binary = binary
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._counter: redis.Redis | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        self._process = subprocess.Popen(
            [self.binary, "--bind", HOST, "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=0.2):
                return
            if self._process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start on port {self.port}", pytrace=False)
            time.sleep(0.02)

    def stop(self) -> None:
        if self._counter is not None:
            self._counter.close()
            self._counter = None
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None

    @contextlib.contextmanager
    def fault(self, kind: str) -> Iterator[None]:
        """Redis "stopped" (connections refused; it stays down) or "hung" (SIGSTOP: connections stay
        open and nothing answers; it wakes up, SIGCONT, when the block ends)."""
        process = self._process
        assert process is not None, "start the server first"
        if kind == "stopped":
            self.stop()
            yield
            return
        os.kill(process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(process.pid, signal.SIGCONT)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def calls(self) -> dict[str, int]:
        """Commands served so far, by name (`INFO commandstats`)."""
        if self._counter is None:  # one connection: a new one would add its handshake (HELLO) to the counts
            self._counter = self.client()
        stats = self._counter.info("commandstats")
        return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}

    def calls_since(self, before: dict[str, int]) -> dict[str, int]:
        """Commands served since `before`, leaving out the INFO calls that measured them."""
        after = self.calls()
        delta = {name: after[name] - before.get(name, 0) for name in after if name != "info"}
        return {name: count for name, count in delta.items() if count}

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
