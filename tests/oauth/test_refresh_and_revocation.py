"""Refresh-token rotation with reuse detection, revocation (RFC 7009) and introspection (RFC 7662)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from sqlalchemy import select

from app.settings import Settings
from auth.oauth.data import digest
from db.engine import Sessions
from db.models import User
from db.oauth import OAuthRefreshToken
from tests.conftest import serve
from tests.oauth.conftest import (
    INTROSPECT,
    REVOKE,
    TOKEN,
    RegisteredClient,
    code_flow_tokens,
    sqlite_only,
    viewer_status,
)
from tests.realtime.conftest import redis_prefix

OAuthClientFactory = Callable[..., AsyncOAuth2Client]


async def test_every_refresh_rotates_the_refresh_token(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User
) -> None:
    first = await code_flow_tokens(http, oauth_client, web_app)
    oauth = oauth_client(web_app)
    second = await oauth.refresh_token(TOKEN, refresh_token=first["refresh_token"])
    third = await oauth.refresh_token(TOKEN, refresh_token=second["refresh_token"])
    assert len({first["refresh_token"], second["refresh_token"], third["refresh_token"]}) == 3
    assert third["scope"] == first["scope"]
    assert await viewer_status(http, third["access_token"]) == (200, {"data": {"viewer": {"name": "Pat"}}})


@sqlite_only
async def test_a_refresh_may_narrow_the_scope_but_not_widen_it(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User
) -> None:
    first = await code_flow_tokens(http, oauth_client, web_app, scope="profile tasks:read")
    oauth = oauth_client(web_app)
    with pytest.raises(OAuthError) as caught:
        await oauth.refresh_token(TOKEN, refresh_token=first["refresh_token"], scope="profile tasks:write")
    assert caught.value.error == "invalid_scope"
    narrower = await oauth.refresh_token(TOKEN, refresh_token=first["refresh_token"], scope="tasks:read")
    assert narrower["scope"] == "tasks:read"


async def test_a_reused_refresh_token_revokes_the_whole_family(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User
) -> None:
    first = await code_flow_tokens(http, oauth_client, web_app)
    oauth = oauth_client(web_app)
    second = await oauth.refresh_token(TOKEN, refresh_token=first["refresh_token"])

    # An attacker (or a confused client) presents the already-used first refresh token.
    with pytest.raises(OAuthError) as caught:
        await oauth.refresh_token(TOKEN, refresh_token=first["refresh_token"])
    assert caught.value.error == "invalid_grant"

    # Everything issued in the family is now dead: the newest refresh token and every access token.
    with pytest.raises(OAuthError) as caught:
        await oauth.refresh_token(TOKEN, refresh_token=second["refresh_token"])
    assert caught.value.error == "invalid_grant"
    for token in (first, second):
        status, body = await viewer_status(http, token["access_token"])
        assert status == 401 and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@sqlite_only
async def test_other_sessions_survive_a_reuse(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User
) -> None:
    stolen = await code_flow_tokens(http, oauth_client, web_app)
    other = await code_flow_tokens(http, oauth_client, web_app)
    oauth = oauth_client(web_app)
    await oauth.refresh_token(TOKEN, refresh_token=stolen["refresh_token"])
    with pytest.raises(OAuthError):
        await oauth.refresh_token(TOKEN, refresh_token=stolen["refresh_token"])
    assert (await viewer_status(http, other["access_token"]))[0] == 200
    assert (await oauth.refresh_token(TOKEN, refresh_token=other["refresh_token"]))["access_token"]


@sqlite_only
async def test_refresh_tokens_are_bound_to_their_client(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User,
    service: RegisteredClient,
) -> None:
    token = await code_flow_tokens(http, oauth_client, web_app)
    with pytest.raises(OAuthError) as caught:
        await oauth_client(service).refresh_token(TOKEN, refresh_token=token["refresh_token"])
    assert caught.value.error in ("invalid_grant", "unauthorized_client")


@sqlite_only
async def test_refresh_tokens_are_stored_hashed(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User,
    sessions: Sessions,
) -> None:
    token = await code_flow_tokens(http, oauth_client, web_app)
    async with sessions() as session:
        stored = list(await session.scalars(select(OAuthRefreshToken.token_hash)))
    assert stored == [digest(token["refresh_token"])]
    assert token["refresh_token"] not in stored


# --- revocation -------------------------------------------------------------------------------------


@sqlite_only
async def test_a_revoked_access_token_stops_working_before_it_expires(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User
) -> None:
    token = await code_flow_tokens(http, oauth_client, web_app)
    assert (await viewer_status(http, token["access_token"]))[0] == 200
    response = await oauth_client(web_app).revoke_token(REVOKE, token=token["access_token"],
                                                        token_type_hint="access_token")
    assert response.status_code == 200
    status, body = await viewer_status(http, token["access_token"])
    assert status == 401 and body["errors"][0]["message"] == "The access token has been revoked."
    # Only that token: the session's refresh token still works.
    refreshed = await oauth_client(web_app).refresh_token(TOKEN, refresh_token=token["refresh_token"])
    assert (await viewer_status(http, refreshed["access_token"]))[0] == 200


async def test_revoking_a_refresh_token_ends_its_session(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User
) -> None:
    token = await code_flow_tokens(http, oauth_client, web_app)
    # The wrong hint still finds it (RFC 7009 §2.1).
    response = await oauth_client(web_app).revoke_token(REVOKE, token=token["refresh_token"],
                                                        token_type_hint="access_token")
    assert response.status_code == 200
    assert (await viewer_status(http, token["access_token"]))[0] == 401
    with pytest.raises(OAuthError):
        await oauth_client(web_app).refresh_token(TOKEN, refresh_token=token["refresh_token"])


@sqlite_only
async def test_revoking_an_unknown_token_is_not_an_error(
    oauth_client: OAuthClientFactory, web_app: RegisteredClient
) -> None:
    response = await oauth_client(web_app).revoke_token(REVOKE, token="no-such-token")
    assert response.status_code == 200  # RFC 7009 §2.2: invalid tokens do not cause an error


@sqlite_only
async def test_a_client_cannot_revoke_another_clients_token(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User,
    service: RegisteredClient,
) -> None:
    token = await code_flow_tokens(http, oauth_client, web_app)
    response = await oauth_client(service).revoke_token(REVOKE, token=token["access_token"])
    assert response.status_code == 400
    assert (await viewer_status(http, token["access_token"]))[0] == 200


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_revocation_list_is_shared_through_redis(
    settings: Settings, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User,
    http: httpx.AsyncClient, redis_url: str,
) -> None:
    """Two instances with one Redis: a token revoked at one is refused by the other (within moments:
    the news travels over pub/sub; tests/oauth/test_revocation_across_processes.py has real processes)."""
    shared = settings.model_copy(update={"redis_url": redis_url, "redis_prefix": redis_prefix()})
    token = await code_flow_tokens(http, oauth_client, web_app)
    async with serve(shared) as first, serve(shared) as second:
        assert (await viewer_status(second, token["access_token"]))[0] == 200
        revoke = await first.post("/oauth/revoke", data={"token": token["access_token"],
                                                         "client_id": web_app.client_id})
        assert revoke.status_code == 200
        deadline = time.monotonic() + 1.0
        while (answer := await viewer_status(second, token["access_token"]))[0] == 200:
            assert time.monotonic() < deadline, "the other instance still accepts the revoked token after 1 s"
            await asyncio.sleep(0.01)
    status, body = answer
    assert status == 401 and body["errors"][0]["message"] == "The access token has been revoked."


# --- introspection ------------------------------------------------------------------------------------


async def test_introspection_reports_active_tokens_and_forgets_revoked_ones(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User,
    resource_server: RegisteredClient, service: RegisteredClient,
) -> None:
    token = await code_flow_tokens(http, oauth_client, web_app)
    api = oauth_client(resource_server)

    access = (await api.introspect_token(INTROSPECT, token=token["access_token"])).json()
    assert access["active"] is True
    assert access["sub"] == str(person.id) and access["client_id"] == web_app.client_id
    assert access["scope"] == token["scope"] and access["aud"] == "tandem" and access["token_type"] == "Bearer"

    # Another client's refresh token is nothing a resource server may read; a confidential client that
    # is not registered as a resource server learns nothing of any token.
    refresh = (await api.introspect_token(INTROSPECT, token=token["refresh_token"],
                                          token_type_hint="refresh_token")).json()
    assert refresh == {"active": False}
    for value in (token["access_token"], token["refresh_token"]):
        assert (await oauth_client(service).introspect_token(INTROSPECT, token=value)).json() == {"active": False}

    await oauth_client(web_app).revoke_token(REVOKE, token=token["refresh_token"])
    for value in (token["access_token"], token["refresh_token"], "garbage", "a.b.c"):
        body = (await api.introspect_token(INTROSPECT, token=value)).json()
        assert body == {"active": False}


@sqlite_only
async def test_public_clients_cannot_introspect(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User
) -> None:
    token = await code_flow_tokens(http, oauth_client, web_app)
    response = await oauth_client(web_app).introspect_token(INTROSPECT, token=token["access_token"])
    assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client"


@sqlite_only
async def test_a_wrong_secret_cannot_introspect(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, service: RegisteredClient
) -> None:
    forged = RegisteredClient(service.client_id, "not-the-secret")
    response = await oauth_client(forged).introspect_token(INTROSPECT, token="anything")
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
