"""Redis stopped or hung (SIGSTOP) under a running app: GraphQL goes on (the limiter and the
revocation check asks the database), sign-in keeps working (its session is in the database), and
what cannot be made safe without Redis — WebSocket tickets — answers 503 with `Retry-After` in the REST error shape within the Redis
timeout, instead of a plain-text 500 or a request held until Redis wakes up."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from app.main import create_app
from app.seed import ensure_demo_client
from app.settings import Settings
from tests.factories import make_user
from tests.realtime.conftest import redis_prefix
from tests.redis_server import PrivateRedis

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.mark.parametrize("fault", ["stopped", "hung"])
async def test_redis_down_degrades_without_500s(settings: Settings, fault: str) -> None:
    with PrivateRedis() as server:
        configured = settings.model_copy(update={
            "redis_url": server.url, "redis_prefix": redis_prefix(), "redis_timeout_seconds": 0.5})
        app = create_app(configured)
        async with app.router.lifespan_context(app):
            alice = await make_user(app.state.sessions, "Alice")
            await ensure_demo_client(app.state.sessions, configured.issuer, configured.graphiql_client_id)
            token = app.state.tokens.issue_access_token(str(alice.id), {"profile"})
            signed_in = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                         base_url="http://127.0.0.1:8000", timeout=30) as http:
                assert (await http.post("/auth/ws-ticket", headers=signed_in)).status_code in (200, 201)
                with server.fault(fault):
                    started = time.monotonic()
                    query = await http.post("/graphql", json={"query": "{ viewer { name } }"}, headers=signed_in)
                    assert query.status_code == 200 and query.json()["data"] == {"viewer": {"name": "Alice"}}
                    ticket = await http.post("/auth/ws-ticket", headers=signed_in)
                    assert ticket.status_code == 503, ticket.text
                    assert ticket.headers["retry-after"] == "5"
                    assert ticket.json()["error"]["code"] == "INTERNAL_SERVER_ERROR"
                    assert ticket.json()["error"]["requestId"] == ticket.headers["x-request-id"]
                    sign_in = await http.get("/oauth/authorize", params={
                        "response_type": "code", "client_id": "tandem-demo", "state": "s",
                        "redirect_uri": "http://127.0.0.1:8000/graphql", "code_challenge": "x" * 43,
                        "code_challenge_method": "S256"})
                    assert sign_in.status_code == 200, sign_in.text  # its session lives in the database
                    assert time.monotonic() - started < 10  # each waited at most a short timeout
                    await asyncio.sleep(2)  # the revocation replica stops vouching (no PONG for 1.5 s)
                    started = time.monotonic()
                    for _ in range(20):
                        query = await http.post("/graphql", json={"query": "{ viewer { name } }"}, headers=signed_in)
                        assert query.status_code == 200
                    tickets = [(await http.post("/auth/ws-ticket", headers=signed_in)).status_code for _ in range(5)]
                    assert tickets == [503] * 5
                    # The Redis breaker is open: neither the limiter nor the revocation check nor a ticket
                    # waits for Redis any more (each would have waited 0.5 s: 12 s in all).
                    assert time.monotonic() - started < 3
