"""`register` and `changePassword`: argon2 hashes, zxcvbn strength, and sessions ended elsewhere."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from sqlalchemy import select

from auth.passwords import verify_password
from db.engine import Sessions
from db.models import User
from tests.conftest import Gql, codes, without_cost
from tests.oauth.conftest import PASSWORD, TOKEN, RegisteredClient, code_flow_tokens, sqlite_only, viewer_status

REGISTER = ("mutation($input: RegisterInput!) { register(input: $input) { user { name email } "
            "userErrors { field message code } } }")
CHANGE = ("mutation($input: ChangePasswordInput!) { changePassword(input: $input) { user { name } "
          "userErrors { field message code } } }")
NEW_PASSWORD = "quartz-lantern-meadow-88"


async def _password_hash(sessions: Sessions, email: str) -> str | None:
    async with sessions() as session:
        return await session.scalar(select(User.password_hash).where(User.email == email))


async def test_register_creates_an_account_with_an_argon2_hash(gql: Gql, sessions: Sessions) -> None:
    body = await gql(REGISTER, {"input": {"email": "New@Example.test", "name": "Nia", "password": NEW_PASSWORD}})
    assert body == {"data": {"register": {"user": None, "userErrors": []}}}  # tests/oauth/test_attempt_limits.py
    stored = await _password_hash(sessions, "new@example.test")
    assert stored is not None and stored.startswith("$argon2id$") and NEW_PASSWORD not in stored
    assert verify_password(stored, NEW_PASSWORD)


@sqlite_only
async def test_register_does_not_tell_that_an_email_is_taken(gql: Gql, sessions: Sessions, alice: User) -> None:
    body = await gql(REGISTER, {"input": {"email": alice.email, "name": "Copy", "password": NEW_PASSWORD}})
    assert body == {"data": {"register": {"user": None, "userErrors": []}}}
    assert await _password_hash(sessions, alice.email) is None  # Alice's account (no password) is untouched


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("password", ["short", "password1", "qwertyuiop", "nia@example.test", "niaexample"])
async def test_register_refuses_a_weak_password(password: str, gql: Gql, sessions: Sessions) -> None:
    body = await gql(REGISTER, {"input": {"email": "nia@example.test", "name": "Nia", "password": password}})
    errors = body["data"]["register"]["userErrors"]
    assert [(error["field"], error["code"]) for error in errors] == [("password", "BAD_USER_INPUT")]
    assert errors[0]["message"].startswith(("Use at least", "This password is too easy to guess."))
    assert await _password_hash(sessions, "nia@example.test") is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_register_refuses_a_bad_email_or_name(gql: Gql) -> None:
    for fields, field in (({"email": "nope"}, "email"), ({"name": "  "}, "name")):
        variables = {"input": {"email": "nia@example.test", "name": "Nia", "password": NEW_PASSWORD, **fields}}
        body = await gql(REGISTER, variables)
        assert [error["field"] for error in body["data"]["register"]["userErrors"]] == [field]


OAuthClientFactory = Callable[..., AsyncOAuth2Client]


async def test_change_password_signs_out_every_other_session(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User,
    sessions: Sessions,
) -> None:
    current = await code_flow_tokens(http, oauth_client, web_app, scope="profile tasks:read")
    other = await code_flow_tokens(http, oauth_client, web_app, scope="profile tasks:read")

    response = await http.post("/graphql", json={"query": CHANGE, "variables": {"input": {
        "currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}}},
        headers={"Authorization": f"Bearer {current['access_token']}"})
    assert without_cost(response.json()) == {"data": {"changePassword": {"user": {"name": "Pat"}, "userErrors": []}}}
    assert verify_password(await _password_hash(sessions, person.email) or "", NEW_PASSWORD)

    # The other session is over: its access token now, its refresh token too.
    assert (await viewer_status(http, other["access_token"]))[0] == 401
    with pytest.raises(OAuthError) as caught:
        await oauth_client(web_app).refresh_token(TOKEN, refresh_token=other["refresh_token"])
    assert caught.value.error == "invalid_grant"
    # The session that changed the password goes on.
    assert (await viewer_status(http, current["access_token"]))[0] == 200
    assert (await oauth_client(web_app).refresh_token(TOKEN, refresh_token=current["refresh_token"]))["access_token"]


@sqlite_only
async def test_change_password_needs_the_current_password_and_a_strong_new_one(
    gql: Gql, sessions: Sessions, person: User
) -> None:
    for fields, field in (({"currentPassword": "wrong"}, "currentPassword"), ({"newPassword": "password"},
                                                                              "newPassword")):
        variables = {"input": {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD, **fields}}
        body = await gql(CHANGE, variables, as_user=person)
        assert [(e["field"], e["code"]) for e in body["data"]["changePassword"]["userErrors"]] == [
            (field, "BAD_USER_INPUT")]
    assert verify_password(await _password_hash(sessions, person.email) or "", PASSWORD)


@sqlite_only
async def test_change_password_needs_the_profile_scope(gql: Gql, person: User) -> None:
    variables = {"input": {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}}
    assert codes(await gql(CHANGE, variables, as_user=person, scope={"tasks:read"})) == ["FORBIDDEN"]
    assert codes(await gql(CHANGE, variables)) == ["UNAUTHENTICATED"]
