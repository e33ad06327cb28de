"""A private PostgreSQL on a free loopback port, for tests that stop the database mid-test.

The shared PostgreSQL serves every test run on the machine; stopping it would break them. This one
belongs to one test (initdb takes about half a second)::

    with PrivatePostgres() as server:
        url = server.url          # postgresql+asyncpg://postgres@127.0.0.1:<port>/postgres
        server.stop()             # the database is down
        server.start()            # back, with its data

As root (CI) the server runs as the `postgres` user, which initdb requires. A missing PostgreSQL
installation fails the test (it never skips).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest

from tests.redis_server import HOST, free_port


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        pytest.fail("PostgreSQL's initdb is not installed; these tests start their own server "
                    "(apt-get install postgresql)", pytrace=False)
    return Path(initdb).parent


class PrivatePostgres:
    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="tandem-pg-"))
        self.data = self.root / "data"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@{HOST}:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if completed.returncode != 0:
            pytest.fail(f"{tool} failed: {completed.stderr.strip()[:500]}", pytrace=False)

    def start(self) -> None:
        options = f"-h {HOST} -p {self.port} -k {self.root} -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=0.2):
                return
            if time.monotonic() > deadline:
                pytest.fail(f"PostgreSQL did not start on port {self.port}", pytrace=False)
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop at once, dropping every connection, as a crash or a failover would."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
