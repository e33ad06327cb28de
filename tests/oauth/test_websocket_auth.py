"""Sockets authenticate through the same `Authenticator` as `/graphql`: external issuers accepted
there work on sockets too, and a revoked token or session is refused at connect, on refresh, and
closes an open socket (4403) within `TANDEM_WS_REVOCATION_CHECK_SECONDS`.

Raw `websockets` connections, where the close code is the point; a live uvicorn server.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import websockets
from authlib.integrations.httpx_client import AsyncOAuth2Client
from redis.asyncio import Redis
from starlette.applications import Starlette

from app.main import create_app
from app.settings import Settings
from auth.external import TrustedIssuer
from db.models import User
from tests.live_server import LiveServer
from tests.oauth.conftest import ISSUER, RegisteredClient, code_flow_tokens
from tests.oauth.test_token_exchange import IdentityProvider
from tests.realtime.conftest import TRANSPORT_WS, redis_prefix

# Tests that need one Redis for two app instances use database 9, keys under `tandem:`.
WS_REDIS_URL = os.environ.get("TANDEM_TEST_WS_REDIS_URL", "redis://127.0.0.1:6379/9")
DIRECT_IDP = "https://direct.example.test"
EXCHANGE_ONLY_IDP = "https://idp.example.test/realms/acme"
CHECK_SECONDS = 0.2

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def direct_idp() -> IdentityProvider:
    return IdentityProvider(DIRECT_IDP, kid="direct-1")


@pytest.fixture(scope="module")
def exchange_only_idp() -> IdentityProvider:
    return IdentityProvider(EXCHANGE_ONLY_IDP)


@pytest.fixture
async def ws_redis() -> AsyncIterator[str]:
    redis = Redis.from_url(WS_REDIS_URL)
    try:
        await redis.ping()
    except OSError as exc:
        pytest.fail(f"Redis is not reachable at {WS_REDIS_URL} ({exc}); run scripts/ensure-services", pytrace=False)
    try:
        yield WS_REDIS_URL
    finally:
        keys = [key async for key in redis.scan_iter(match="tandem:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


@pytest.fixture
def settings(settings: Settings, direct_idp: IdentityProvider, exchange_only_idp: IdentityProvider) -> Settings:
    issuers = [
        TrustedIssuer(issuer=DIRECT_IDP, jwks=direct_idp.jwks(), scopes=["tasks:read"], accept_at_graphql=True),
        TrustedIssuer(issuer=EXCHANGE_ONLY_IDP, jwks=exchange_only_idp.jwks(), scopes=["tasks:read"]),
    ]
    return settings.model_copy(update={"trusted_issuers": issuers, "ws_revocation_check_seconds": CHECK_SECONDS})


async def _closed_with(socket: Any, seconds: float = 10) -> tuple[int, str]:
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(socket.recv(), seconds)
    assert closed.value.rcvd is not None, "the server closed without a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def _init(socket: Any, token: str) -> dict[str, Any]:
    await socket.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
    reply: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), 10))
    return reply


async def _viewer_over(socket: Any) -> Any:
    await socket.send(json.dumps({"type": "subscribe", "id": "v", "payload": {"query": "{ viewer { name } }"}}))
    message = json.loads(await asyncio.wait_for(socket.recv(), 10))
    assert message["type"] == "next", message
    return message["payload"]["data"]


async def test_an_external_issuers_token_opens_a_socket(settings: Settings, direct_idp: IdentityProvider,
                                                        exchange_only_idp: IdentityProvider) -> None:
    async with LiveServer(create_app(settings)) as live:
        url = f"{live.ws_url}/graphql"
        async with websockets.connect(url, subprotocols=[TRANSPORT_WS]) as socket:
            token = direct_idp.token(sub="direct-9", email="lee@direct.test", name="Lee", scope="tasks:read")
            assert await _init(socket, token) == {"type": "connection_ack"}
            assert await _viewer_over(socket) == {"viewer": {"name": "Lee"}}
        # As at /graphql: an issuer trusted only for token exchange is refused, and so is a foreign audience.
        for refused in [exchange_only_idp.token(), direct_idp.token(aud="another-api")]:
            async with websockets.connect(url, subprotocols=[TRANSPORT_WS]) as socket:
                await socket.send(json.dumps({"type": "connection_init",
                                              "payload": {"Authorization": f"Bearer {refused}"}}))
                assert (await _closed_with(socket))[0] == 4403


async def test_an_external_socket_closes_when_its_token_expires(settings: Settings,
                                                                direct_idp: IdentityProvider) -> None:
    # `exp` comes from the token the authenticator verified, whoever issued it (30 s leeway at verification).
    token = direct_idp.token(sub="direct-9", email="lee@direct.test", exp=int(time.time()) + 1)
    async with LiveServer(create_app(settings)) as live, \
            websockets.connect(f"{live.ws_url}/graphql", subprotocols=[TRANSPORT_WS]) as socket:
        assert await _init(socket, token) == {"type": "connection_ack"}
        assert await _closed_with(socket) == (4403, "Forbidden: the access token expired")


async def test_revoking_at_oauth_revoke_closes_open_sockets_and_refuses_new_ones(
    settings: Settings, ws_redis: str, web_app: RegisteredClient, person: User,
) -> None:
    # The OAuth flow runs against one instance, the socket against another; Redis carries the revocation.
    shared = settings.model_copy(update={"redis_url": ws_redis, "redis_prefix": redis_prefix()})
    oauth_app = create_app(shared)
    async with oauth_app.router.lifespan_context(oauth_app), \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=oauth_app), base_url=ISSUER) as http:
        tokens = await _tokens(http, oauth_app, web_app)
        async with LiveServer(create_app(shared)) as live:
            url = f"{live.ws_url}/graphql"
            async with websockets.connect(url, subprotocols=[TRANSPORT_WS]) as socket:
                assert await _init(socket, tokens["access_token"]) == {"type": "connection_ack"}
                assert await _viewer_over(socket) == {"viewer": {"name": "Pat"}}
                response = await _revoke(http, web_app, tokens["access_token"])
                assert response.status_code == 200
                started = time.monotonic()
                assert await _closed_with(socket) == (4403, "Forbidden: the access token was revoked")
                assert time.monotonic() - started < 5  # bounded by the check interval, not the token's life
            async with websockets.connect(url, subprotocols=[TRANSPORT_WS]) as socket:
                await socket.send(json.dumps({"type": "connection_init",
                                              "payload": {"Authorization": f"Bearer {tokens['access_token']}"}}))
                assert (await _closed_with(socket))[0] == 4403


async def test_revoking_the_session_closes_its_sockets(
    settings: Settings, ws_redis: str, web_app: RegisteredClient, person: User,
) -> None:
    """Signing out (revoking the refresh token) ends the session: its access tokens' sockets close too."""
    shared = settings.model_copy(update={"redis_url": ws_redis, "redis_prefix": redis_prefix()})
    oauth_app = create_app(shared)
    async with oauth_app.router.lifespan_context(oauth_app), \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=oauth_app), base_url=ISSUER) as http:
        tokens = await _tokens(http, oauth_app, web_app)
        async with LiveServer(create_app(shared)) as live, \
                websockets.connect(f"{live.ws_url}/graphql", subprotocols=[TRANSPORT_WS]) as socket:
            assert await _init(socket, tokens["access_token"]) == {"type": "connection_ack"}
            assert (await _revoke(http, web_app, tokens["refresh_token"])).status_code == 200
            assert await _closed_with(socket) == (4403, "Forbidden: the access token was revoked")


async def test_a_revoked_token_cannot_refresh_a_socket(settings: Settings, token_for: Callable[..., str],
                                                       alice: User) -> None:
    app = create_app(settings.model_copy(update={"ws_revocation_check_seconds": 3600}))
    async with app.router.lifespan_context(app), LiveServer(app) as live, \
            websockets.connect(f"{live.ws_url}/graphql", subprotocols=[TRANSPORT_WS]) as socket:
        assert await _init(socket, token_for(alice)) == {"type": "connection_ack"}
        fresh = app.state.tokens.issue_access_token(str(alice.id), ["tasks:read"])
        claims = app.state.tokens.verify(fresh)
        await app.state.revocations.revoke_token(claims.token_id, claims.expires_at)
        await socket.send(json.dumps({"type": "ping", "payload": {"Authorization": f"Bearer {fresh}"}}))
        assert await _closed_with(socket) == (4403, "Forbidden: the new access token is not valid for this connection")


async def test_an_unrevoked_socket_stays_open_across_checks(settings: Settings, token_for: Callable[..., str],
                                                            alice: User) -> None:
    async with LiveServer(create_app(settings)) as live, \
            websockets.connect(f"{live.ws_url}/graphql", subprotocols=[TRANSPORT_WS]) as socket:
        assert await _init(socket, token_for(alice)) == {"type": "connection_ack"}
        await asyncio.sleep(5 * CHECK_SECONDS)
        assert await _viewer_over(socket) == {"viewer": {"name": "Alice"}}


async def _tokens(http: httpx.AsyncClient, app: Starlette, web_app: RegisteredClient) -> dict[str, Any]:
    """The code flow with authlib's client against `app` (rather than the fixture's app)."""

    def against(registered: RegisteredClient, **kwargs: Any) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(client_id=registered.client_id, client_secret=registered.secret,
                                 token_endpoint_auth_method="none", transport=httpx.ASGITransport(app=app),
                                 base_url=ISSUER, **kwargs)

    return await code_flow_tokens(http, against, web_app)


async def _revoke(http: httpx.AsyncClient, web_app: RegisteredClient, token: str) -> httpx.Response:
    return await http.post("/oauth/revoke", data={"token": token, "client_id": web_app.client_id})


async def test_tickets_are_had_for_exactly_the_tokens_a_socket_accepts(
    settings: Settings, direct_idp: IdentityProvider, token_for: Callable[..., str], alice: User
) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app), LiveServer(app) as live, \
            httpx.AsyncClient(base_url=live.url) as http:
        external = direct_idp.token(sub="direct-9", email="lee@direct.test", name="Lee")
        response = await http.post("/auth/ws-ticket", headers={"Authorization": f"Bearer {external}"})
        assert response.status_code == 201
        async with websockets.connect(f"{live.ws_url}/graphql?ticket={response.json()['ticket']}",
                                      subprotocols=[TRANSPORT_WS]) as socket:
            await socket.send(json.dumps({"type": "connection_init"}))
            assert json.loads(await asyncio.wait_for(socket.recv(), 10)) == {"type": "connection_ack"}
            assert await _viewer_over(socket) == {"viewer": {"name": "Lee"}}
        revoked = token_for(alice)
        claims = app.state.tokens.verify(revoked)
        await app.state.revocations.revoke_token(claims.token_id, claims.expires_at)
        refused = await http.post("/auth/ws-ticket", headers={"Authorization": f"Bearer {revoked}"})
        assert refused.status_code == 401
        assert refused.json()["error"]["message"] == "The access token has been revoked."
