"""Client credentials for service accounts, and what a service client may do at /graphql."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client

from db.engine import Sessions
from db.models import User
from tests.conftest import codes, global_id, without_cost
from tests.factories import make_task, make_user
from tests.oauth.conftest import TOKEN, RegisteredClient, sqlite_only

OAuthClientFactory = Callable[..., AsyncOAuth2Client]


async def _graphql(http: httpx.AsyncClient, token: str, query: str, variables: dict[str, Any] | None = None) -> Any:
    response = await http.post("/graphql", json={"query": query, "variables": variables or {}},
                               headers={"Authorization": f"Bearer {token}"})
    return response.status_code, without_cost(response.json())


@sqlite_only
@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_a_service_gets_a_token_for_itself(
    method: str, oauth_client: OAuthClientFactory, service: RegisteredClient
) -> None:
    token = await oauth_client(service, token_endpoint_auth_method=method).fetch_token(
        TOKEN, grant_type="client_credentials")
    assert "refresh_token" not in token and "id_token" not in token
    assert token["scope"] == "documents:read tasks:read"
    claims = jwt.decode(token["access_token"], options={"verify_signature": False})
    assert claims["sub"] == service.client_id == claims["client_id"]  # RFC 9068 §2.2
    assert "sid" not in claims


@sqlite_only
async def test_a_service_gets_only_the_scopes_it_was_granted(
    oauth_client: OAuthClientFactory, service: RegisteredClient
) -> None:
    token = await oauth_client(service).fetch_token(TOKEN, grant_type="client_credentials",
                                                     scope="tasks:read tasks:write admin")
    assert token["scope"] == "tasks:read"
    with pytest.raises(OAuthError) as caught:
        await oauth_client(service).fetch_token(TOKEN, grant_type="client_credentials", scope="launch:missiles")
    assert caught.value.error == "invalid_scope"


@sqlite_only
async def test_a_wrong_secret_is_refused(oauth_client: OAuthClientFactory, service: RegisteredClient) -> None:
    for method in ("client_secret_basic", "client_secret_post"):
        with pytest.raises(OAuthError) as caught:
            await oauth_client(RegisteredClient(service.client_id, "wrong"), token_endpoint_auth_method=method
                               ).fetch_token(TOKEN, grant_type="client_credentials")
        assert caught.value.error == "invalid_client"


@sqlite_only
async def test_public_clients_cannot_use_client_credentials(
    http: httpx.AsyncClient, web_app: RegisteredClient
) -> None:
    response = await http.post(TOKEN, data={"grant_type": "client_credentials", "client_id": web_app.client_id})
    assert response.status_code in (400, 401)
    assert response.json()["error"] in ("invalid_client", "unauthorized_client")


@sqlite_only
async def test_unknown_grant_types_are_refused(oauth_client: OAuthClientFactory, service: RegisteredClient) -> None:
    with pytest.raises(OAuthError) as caught:
        await oauth_client(service).fetch_token(TOKEN, grant_type="password", username="x", password="y")
    assert caught.value.error == "unsupported_grant_type"


@sqlite_only
async def test_a_service_client_is_a_viewer_without_a_user(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, service: RegisteredClient, sessions: Sessions,
    alice: User,
) -> None:
    token = (await oauth_client(service).fetch_token(TOKEN, grant_type="client_credentials"))["access_token"]
    await make_task(sessions, alice, "Alice's")

    status, body = await _graphql(http, token, "{ viewer { name } }")
    assert (status, body) == (200, {"data": {"viewer": None}})
    # "Your tasks" means nothing without a user: refused, even with tasks:read.
    status, body = await _graphql(http, token, "{ tasks { totalCount } }")
    assert status == 200 and codes(body) == ["FORBIDDEN"]

    # Acting for a user is refused, and missing scopes are FORBIDDEN, not UNAUTHENTICATED.
    status, body = await _graphql(http, token, 'mutation { updateViewer(input: {name: "x"}) { user { name } } }')
    assert codes(body) == ["FORBIDDEN"]
    status, body = await _graphql(http, token, 'mutation { createTask(input: {title: "x"}) { task { id } } }')
    assert codes(body) == ["FORBIDDEN"]


@sqlite_only
async def test_only_admin_services_see_emails(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, sessions: Sessions, alice: User
) -> None:
    from auth.oauth.data import create_client

    query = "query($id: ID!) { user(id: $id) { email } }"
    variables = {"id": global_id("User", alice.id)}
    bodies = []
    for scope in (["tasks:read"], ["admin"]):
        client, secret = await create_client(sessions, name="Svc", redirect_uris=[], scope=scope,
                                             grant_types=["client_credentials"], confidential=True)
        token = (await oauth_client(RegisteredClient(client.client_id, secret)).fetch_token(
            TOKEN, grant_type="client_credentials"))["access_token"]
        bodies.append((await _graphql(http, token, query, variables))[1])
    assert codes(bodies[0]) == ["FORBIDDEN"]  # the team directory is for users and admin services
    assert bodies[1] == {"data": {"user": {"email": alice.email}}}


@sqlite_only
async def test_a_deleted_client_s_tokens_stop_working(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, service: RegisteredClient, sessions: Sessions
) -> None:
    from sqlalchemy import delete

    from db.oauth import OAuthClient

    token = (await oauth_client(service).fetch_token(TOKEN, grant_type="client_credentials"))["access_token"]
    async with sessions.begin() as session:
        await session.execute(delete(OAuthClient).where(OAuthClient.client_id == service.client_id))
    status, body = await _graphql(http, token, "{ viewer { name } }")
    assert status == 401 and codes(body) == ["UNAUTHENTICATED"]


@sqlite_only
async def test_admin_users_need_the_admin_scope_to_see_emails(
    http: httpx.AsyncClient, app: Any, sessions: Sessions, alice: User
) -> None:
    admin = await make_user(sessions, "Root", role="admin")
    query = "query($id: ID!) { user(id: $id) { email } }"
    variables = {"id": global_id("User", alice.id)}
    for scope, expected in (({"profile"}, None), ({"profile", "admin"}, alice.email)):
        token = app.state.tokens.issue_access_token(str(admin.id), scope)
        assert (await _graphql(http, token, query, variables))[1] == {"data": {"user": {"email": expected}}}
    member_token = app.state.tokens.issue_access_token(str(alice.id), {"admin"})
    bob = await make_user(sessions, "Bob")
    body = (await _graphql(http, member_token, query, {"id": global_id("User", bob.id)}))[1]
    assert body == {"data": {"user": {"email": None}}}  # a member's token with `admin` is still a member's
