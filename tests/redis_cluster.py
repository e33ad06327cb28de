"""A private Redis Cluster of three masters on loopback, for the tests that must hold on a cluster::

    with PrivateCluster() as cluster:
        settings.model_copy(update={"redis_url": cluster.url})   # redis+cluster://127.0.0.1:<port>

Started as an operator would: three `redis-server --cluster-enabled yes`, joined by
`redis-cli --cluster create`, ready once every node reports `cluster_state:ok`. A missing binary
fails the test (it never skips).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest
import redis

from tests.redis_server import HOST

MASTERS = 3
BUS_OFFSET = 10000  # a node also listens on its port + 10000 for the cluster bus


def _cluster_port() -> int:
    """A free port whose bus port (+10000) is free too."""
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if port + BUS_OFFSET > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind((HOST, port + BUS_OFFSET))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class PrivateCluster:
    def __init__(self) -> None:
        binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if binary is None or cli is None:
            pytest.fail("redis-server and redis-cli are needed for the Redis Cluster tests "
                        "(apt-get install redis-server)", pytrace=False)
        self.binary, self.cli = binary, cli
        self.ports: list[int] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        self._dir = Path(tempfile.mkdtemp(prefix="tandem-cluster-"))

    @property
    def url(self) -> str:
        return f"redis+cluster://{HOST}:{self.ports[0]}"

    def start(self) -> None:
        while len(self.ports) < MASTERS:
            port = _cluster_port()
            if port not in self.ports:
                self.ports.append(port)
        for port in self.ports:
            self._processes.append(subprocess.Popen(
                [self.binary, "--bind", HOST, "--port", str(port), "--cluster-enabled", "yes",
                 "--cluster-config-file", f"nodes-{port}.conf", "--cluster-node-timeout", "2000",
                 "--save", "", "--appendonly", "no", "--dir", str(self._dir)],
                stdout=subprocess.DEVNULL,
            ))
        for port in self.ports:
            self._wait_listening(port)
        created = subprocess.run(
            [self.cli, "--cluster", "create", *(f"{HOST}:{port}" for port in self.ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, timeout=60,
        )
        if created.returncode != 0:
            self.stop()
            pytest.fail(f"redis-cli --cluster create failed: {created.stdout.decode()[-500:]}", pytrace=False)
        deadline = time.monotonic() + 30
        while not all(self._ok(port) for port in self.ports):
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail("the Redis Cluster did not reach cluster_state:ok within 30 s", pytrace=False)
            time.sleep(0.1)

    def _wait_listening(self, port: int) -> None:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.2):
                return
            if time.monotonic() > deadline:
                pytest.fail(f"a cluster node did not start on port {port}", pytrace=False)
            time.sleep(0.02)

    @staticmethod
    def _ok(port: int) -> bool:
        with redis.Redis(host=HOST, port=port) as node:
            info = node.execute_command("CLUSTER", "INFO").decode()
            return "cluster_state:ok" in info

    def node_of(self, key: str) -> int:
        """The port of the master that holds `key`'s slot."""
        with redis.Redis(host=HOST, port=self.ports[0]) as node:
            slot = int(node.execute_command("CLUSTER", "KEYSLOT", key))
            for start, end, master, *_ in node.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return int(master[1])
        raise AssertionError(f"no node holds slot {slot}")

    def keys(self, pattern: str) -> list[str]:
        """Every key matching `pattern`, on every node."""
        found: list[str] = []
        for port in self.ports:
            with redis.Redis(host=HOST, port=port) as node:
                found += [key.decode() for key in node.scan_iter(match=pattern)]
        return found

    def flush(self) -> None:
        for port in self.ports:
            with redis.Redis(host=HOST, port=port) as node:
                node.flushall()

    def stop(self) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        self._processes = []
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
