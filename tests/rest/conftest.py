"""Fixtures for the REST layer: a fast delivery worker, a real webhook receiver on loopback, a
configured inbound source with its acting user, and Redis database 7 for idempotency keys.

`settings` here wraps the suite's (so every test still runs on SQLite and PostgreSQL) with a worker
that polls every 20 ms and retries after tens of milliseconds, so retry tests take moments; no
test asserts how long anything took, they only wait (bounded) for what must happen.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.main import create_app
from app.settings import Settings
from auth import scopes
from db.engine import Sessions
from db.models import User
from rest.webhook_sources import WebhookSource
from tests.conftest import Gql
from tests.live_server import LiveServer

T = TypeVar("T")

SECRET_A = "whsec_" + base64.b64encode(b"tandem-test-secret-number-one-32").decode()
SECRET_B = "whsec_" + base64.b64encode(b"tandem-test-secret-number-two-32").decode()
BOT_EMAIL = "webhook-bot@example.test"
SOURCE = "crm"
REDIS_URL = "redis://127.0.0.1:6379/7"  # this suite's own database number
WAIT_SECONDS = 20.0

CREATE_ENDPOINT = """mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) {
  endpoint { id url events enabled } secret userErrors { field message code } } }"""
ENDPOINT = """query($id: ID!) { webhookEndpoint(id: $id) { id enabled disabledAt disabledReason failingSince
  deliveries(first: 50) { totalCount nodes { id eventId eventType status attemptCount nextAttemptAt payload
    attempts { number outcome responseStatus latencyMs attemptedAt error } } } } }"""


def fast(settings: Settings, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "webhook_poll_seconds": 0.02,
        "webhook_retry_base_seconds": 0.05,
        "webhook_retry_max_seconds": 0.2,
        "webhook_timeout_seconds": 0.5,
        "webhook_lease_seconds": 2.0,
        "webhook_sources": [WebhookSource(name=SOURCE, secrets=[SECRET_A, SECRET_B], act_as=BOT_EMAIL)],
    }
    values.update(overrides)
    return settings.model_copy(update=values)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return fast(settings)


async def make_bot(sessions: Sessions) -> User:
    """The user that the `crm` source acts as."""
    user = User(email=BOT_EMAIL, name="CRM bot", password_hash=None, role="member")
    async with sessions.begin() as session:
        session.add(user)
    return user


@pytest.fixture
async def bot(sessions: Sessions) -> User:
    return await make_bot(sessions)


async def eventually(check: Callable[[], T | Awaitable[T | None] | None], what: str,
                     within: float = WAIT_SECONDS) -> T:
    """Poll `check` until it returns something truthy; fail (naming `what`) after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {within:g} s", pytrace=False)
        await asyncio.sleep(0.02)


# --- an app of the test's own -------------------------------------------------------------------


@dataclass
class OwnApp:
    http: httpx.AsyncClient
    sessions: Sessions
    app: Starlette

    def token(self, user: User) -> str:
        minted: str = self.app.state.tokens.issue_access_token(str(user.id), scopes.ALL)
        return minted

    async def graphql(self, user: User | None, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Accept": "application/graphql-response+json"}
        if user is not None:
            headers["Authorization"] = f"Bearer {self.token(user)}"
        response = await self.http.post("/graphql", json={"query": query, "variables": variables or {}},
                                        headers=headers)
        body: dict[str, Any] = response.json()
        return body


@contextlib.asynccontextmanager
async def own_app(settings: Settings) -> AsyncIterator[OwnApp]:
    """An app built from `settings`, for tests whose background worker must be the only one on the
    database: such tests take none of the fixtures that start the suite's `app` (`sessions`,
    `alice`, `token_for`, `gql`, `client`), whose worker would otherwise deliver or apply too."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tandem.test") as http:
            yield OwnApp(http, app.state.sessions, app)


# --- a webhook receiver --------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    path: str


@dataclass
class Receiver:
    """What one test's webhook receiver got, and how it answers.

    It answers from `script` in order — an HTTP status, or "hang" (answer 200 only after
    `hang_seconds`, longer than the worker waits) — and 200 once the script is used up.
    """

    url: str
    script: list[int | str] = field(default_factory=list)
    hang_seconds: float = 1.5
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, message: Received) -> int | str:
        with self._lock:
            self.received.append(message)
            return self.script.pop(0) if self.script else 200

    def count(self) -> int:
        with self._lock:
            return len(self.received)


class ReceiverServer:
    """One real HTTP server (uvicorn on 127.0.0.1) for the whole session; each test gets a fresh
    `Receiver` under a path of its own, so a late delivery from an earlier test never lands in it."""

    def __init__(self) -> None:
        self.current: Receiver | None = None
        self.base_url = ""
        self._numbers = iter(range(1, 10**9))

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()
            spy = self.current
            if spy is None or not request.url.path.startswith(spy.url.removeprefix(self.base_url)):
                return Response(status_code=410)  # for an earlier test
            action = spy.record(Received(dict(request.headers), body, request.url.path))
            if action == "hang":
                await asyncio.sleep(spy.hang_seconds)
                return Response(status_code=200)
            assert isinstance(action, int)
            return Response(b"ok" if action < 300 else b"nope", status_code=action)

        return Starlette(routes=[Route("/{path:path}", hook, methods=["POST"])])

    def fresh(self) -> Receiver:
        self.current = Receiver(url=f"{self.base_url}/hook-{next(self._numbers)}")
        return self.current


@pytest.fixture(scope="session")
def receiver_server() -> Iterator[ReceiverServer]:
    server = ReceiverServer()
    with LiveServer(server.app(), shutdown_timeout=5.0) as live:
        server.base_url = live.url
        yield server


@pytest.fixture
def receiver(receiver_server: ReceiverServer) -> Iterator[Receiver]:
    yield receiver_server.fresh()
    receiver_server.current = None


# --- GraphQL helpers -----------------------------------------------------------------------------


async def create_endpoint(gql: Gql, user: User, url: str, events: list[str] | None = None,
                          description: str = "") -> tuple[str, str]:
    """The new endpoint's ID and its signing secret."""
    body = await gql(CREATE_ENDPOINT, {"input": {"url": url, "events": events or ["TASK_CREATED"],
                                                  "description": description}}, as_user=user)
    payload = body["data"]["createWebhookEndpoint"]
    assert payload["userErrors"] == [], payload
    return payload["endpoint"]["id"], payload["secret"]


async def endpoint_state(gql: Gql, user: User, endpoint_id: str) -> dict[str, Any]:
    body = await gql(ENDPOINT, {"id": endpoint_id}, as_user=user)
    assert "errors" not in body, body
    state: dict[str, Any] = body["data"]["webhookEndpoint"]
    return state


# --- Redis ---------------------------------------------------------------------------------------


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """Redis database 7, emptied of our keys before and after; an unreachable Redis fails the test."""
    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (OSError, RedisError) as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} ({exc}); start redis-server.", pytrace=False)

    async def clear() -> None:
        async for name in client.scan_iter(match="tandem:*"):
            await client.delete(name)

    await clear()
    yield REDIS_URL
    await clear()
    await client.aclose()
