"""Password guesses and registrations, as an attacker sends them: many at once, from fresh sessions.

Sign-in and `changePassword` share one per-account budget (5 attempts per 15 minutes), counted
before argon2 runs; `register` answers the same for a taken address and a free one, and is limited
per address and per IP in a sliding window. Each runs with the in-process store and with Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from starlette.applications import Starlette

from app.settings import Settings
from db.engine import Sessions
from db.models import User
from tests.conftest import GRAPHQL_RESPONSE, codes, without_cost
from tests.oauth.conftest import ISSUER, PASSWORD, REDIRECT_URI, RegisteredClient, csrf_of, start_code_flow

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

CHANGE = ("mutation($input: ChangePasswordInput!) { changePassword(input: $input) { user { name } "
          "userErrors { field code } } }")
REGISTER = ("mutation($input: RegisterInput!) { register(input: $input) { user { name } message "
            "userErrors { field message code } } }")
NEW_PASSWORD = "quartz-lantern-meadow-88"


@pytest.fixture(params=["memory", "redis"])
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    if request.param == "memory":
        return settings
    return settings.model_copy(update={"redis_url": request.getfixturevalue("redis_url")})


def _browser(app: Starlette) -> httpx.AsyncClient:
    """A fresh browser: its own cookie jar, so its own sign-in session and CSRF token."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER)


async def _sign_in(app: Starlette, url: str, email: str, password: str) -> int:
    async with _browser(app) as browser:
        page = await browser.get(url)
        response = await browser.post(url, data={"csrf_token": csrf_of(page), "action": "login", "username": email,
                                                 "password": password})
        return response.status_code


async def test_parallel_wrong_passwords_are_counted_before_they_are_checked(
    app: Starlette, oauth_client: Callable[..., AsyncOAuth2Client], web_app: RegisteredClient, person: User
) -> None:
    url = start_code_flow(oauth_client(web_app, redirect_uri=REDIRECT_URI, code_challenge_method="S256")).url
    statuses = await asyncio.gather(*(_sign_in(app, url, person.email, f"wrong-{n}") for n in range(20)))
    assert sorted(statuses) == [400] * 5 + [429] * 15  # only five reached argon2
    assert await _sign_in(app, url, person.email, PASSWORD) == 429  # and the account stays locked


async def test_a_successful_sign_in_gives_its_attempt_back(
    app: Starlette, oauth_client: Callable[..., AsyncOAuth2Client], web_app: RegisteredClient, person: User
) -> None:
    url = start_code_flow(oauth_client(web_app, redirect_uri=REDIRECT_URI, code_challenge_method="S256")).url
    for _ in range(10):
        assert await _sign_in(app, url, person.email, PASSWORD) == 200
    for _ in range(5):
        assert await _sign_in(app, url, person.email, "wrong") == 400
    assert await _sign_in(app, url, person.email, "wrong") == 429


async def _change(client: httpx.AsyncClient, token: str, current: str) -> dict[str, object]:
    response = await client.post("/graphql", headers={"Authorization": f"Bearer {token}", "Accept": GRAPHQL_RESPONSE},
                                 json={"query": CHANGE, "variables": {"input": {
                                     "currentPassword": current, "newPassword": NEW_PASSWORD}}})
    return without_cost(response.json())


async def test_change_password_guesses_share_the_sign_in_budget(
    app: Starlette, oauth_client: Callable[..., AsyncOAuth2Client], web_app: RegisteredClient, person: User,
    token_for: Callable[..., str],
) -> None:
    token = token_for(person)
    async with _browser(app) as client:
        answers = await asyncio.gather(*(_change(client, token, f"guess-{n}") for n in range(12)))
    wrong = [a for a in answers if (a.get("data") or {}).get("changePassword")]  # type: ignore[union-attr]
    limited = [a for a in answers if codes(a) == ["RATE_LIMITED"]]
    assert (len(wrong), len(limited)) == (5, 7)
    # Even the right password waits now, and so does signing in.
    async with _browser(app) as client:
        assert codes(await _change(client, token, PASSWORD)) == ["RATE_LIMITED"]
    url = start_code_flow(oauth_client(web_app, redirect_uri=REDIRECT_URI, code_challenge_method="S256")).url
    assert await _sign_in(app, url, person.email, PASSWORD) == 429


async def _register(client: httpx.AsyncClient, email: str, name: str = "Nia") -> dict[str, object]:
    response = await client.post("/graphql", headers={"Accept": GRAPHQL_RESPONSE}, json={
        "query": REGISTER, "variables": {"input": {"email": email, "name": name, "password": NEW_PASSWORD}}})
    return without_cost(response.json())


async def test_register_answers_alike_for_a_taken_and_a_free_address(
    app: Starlette, person: User, sessions: Sessions
) -> None:
    async with _browser(app) as client:
        taken = await _register(client, person.email)
        free = await _register(client, "nia@example.test")
    assert taken == free
    assert free["data"] == {"register": {"user": None, "userErrors": [], "message": free["data"]["register"]["message"]}}  # type: ignore[index]
    from resolvers.users import user_by_email

    assert (await user_by_email(sessions, "nia@example.test")) is not None
    kept = await user_by_email(sessions, person.email)
    assert kept is not None and kept.name == "Pat"  # the existing account is untouched


async def test_registrations_are_limited_per_address_and_per_ip(app: Starlette) -> None:
    async with _browser(app) as client:
        for _ in range(3):
            assert codes(await _register(client, "spam@example.test")) == []
        assert codes(await _register(client, "spam@example.test")) == ["RATE_LIMITED"]
        for n in range(6):  # 4 + 6: the IP's ten (a refused attempt counts too), then refused
            assert codes(await _register(client, f"other{n}@example.test")) == []
        refused = await _register(client, "eleventh@example.test")
    assert codes(refused) == ["RATE_LIMITED"]
