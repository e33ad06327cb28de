"""Fixtures for the realtime tests: a live server, graphql-ws clients, Redis settings, server processes.

`live` serves the fixture app under uvicorn on a free port (real sockets). `ws` opens a gql client
over graphql-transport-ws (or legacy graphql-ws) with a token in `connection_init`. `ServerProcess`
runs `uvicorn app.main:app_from_environment` as a separate process, for scale-out, crash-restart
and SIGTERM tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from gql import Client, GraphQLRequest
from gql.client import AsyncClientSession
from gql.transport.websockets import WebsocketsTransport
from pydantic import SecretStr
from starlette.applications import Starlette

from app.main import create_app
from app.settings import Settings
from db.models import User
from tests.live_server import LiveServer

REDIS_TEST_URL = os.environ.get("TANDEM_TEST_REALTIME_REDIS_URL", "redis://127.0.0.1:6379/5")
RUN_ID = uuid.uuid4().hex[:12]
ROOT = Path(__file__).resolve().parents[2]
TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"


def redis_prefix() -> str:
    """Pub/sub channels are shared by all Redis databases: every test gets its own namespace. Not
    under `tandem:`, so a key or channel that ignores TANDEM_REDIS_PREFIX shows up as unprefixed."""
    return f"tdm-test-{RUN_ID}-{uuid.uuid4().hex[:8]}:"


def require_redis() -> None:
    try:
        redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_TEST_URL} ({exc}); start it (scripts/ensure-services).",
                    pytrace=False)


@pytest.fixture
def redis_settings(settings: Settings) -> Settings:
    require_redis()
    return settings.model_copy(update={"redis_url": REDIS_TEST_URL, "redis_prefix": redis_prefix()})


@pytest.fixture
async def live(app: Starlette, settings: Settings) -> AsyncIterator[LiveServer]:
    """The app for `settings` under uvicorn. Its own instance: the fixture app's engine belongs to the
    test's event loop (factories use it), and asyncpg connections cannot cross loops."""
    async with LiveServer(create_app(settings)) as server:
        yield server


def ws_transport(url: str, token: str | None, protocol: str = TRANSPORT_WS, **kwargs: Any) -> WebsocketsTransport:
    payload = {"Authorization": f"Bearer {token}"} if token else {}
    kwargs.setdefault("close_timeout", 1)
    return WebsocketsTransport(url=url, init_payload=payload, subprotocols=[protocol], **kwargs)


def subscribe(session: AsyncClientSession, query: str, variables: dict[str, Any] | None = None) -> Any:
    """An async iterator over the subscription's results (gql's graphql-ws client)."""
    return session.subscribe(GraphQLRequest(query, variable_values=variables or {}))


@contextlib.asynccontextmanager
async def ws_session(url: str, token: str | None, protocol: str = TRANSPORT_WS, **kwargs: Any
                     ) -> AsyncIterator[AsyncClientSession]:
    client = Client(transport=ws_transport(url, token, protocol, **kwargs), fetch_schema_from_transport=False)
    async with client as session:
        yield session


@pytest.fixture
def ws(live: LiveServer, token_for: Callable[..., str]) -> Callable[..., Any]:
    """`async with ws(user) as session:` a graphql-ws session (gql) on the live server, as `user`."""

    def open_session(user: User | None, protocol: str = TRANSPORT_WS, **kwargs: Any) -> Any:
        return ws_session(f"{live.ws_url}/graphql", token_for(user) if user else None, protocol, **kwargs)

    return open_session


@pytest.fixture
async def http(live: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
        yield client


async def post_gql(client: httpx.AsyncClient, token: str, query: str, variables: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}},
                                 headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def next_within(iterator: Any, seconds: float = 10.0) -> Any:
    return await asyncio.wait_for(anext(iterator), seconds)


# --- separate server processes --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """`uvicorn app.main:app_from_environment` in its own process, configured by TANDEM_* variables."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")}
        for name, value in self.settings.model_dump(mode="json").items():
            if value is None or value == []:
                continue  # the default; an empty string would not parse as a JSON list
            if isinstance(value, list) and all(isinstance(item, str) for item in value):
                env[f"TANDEM_{name.upper()}"] = ",".join(value)  # the comma-separated lists (NoDecode)
            elif isinstance(value, list | dict):
                env[f"TANDEM_{name.upper()}"] = json.dumps(value)
            else:
                env[f"TANDEM_{name.upper()}"] = str(value)
            secret = getattr(self.settings, name)
            if isinstance(secret, SecretStr):  # dumped as asterisks
                env[f"TANDEM_{name.upper()}"] = secret.get_secret_value()
        return env

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app_from_environment", "--factory",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
             "--timeout-graceful-shutdown", "5"],
            cwd=ROOT, env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log_path.read_text()[-2000:]}")

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def wait(self, timeout: float = 20) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
