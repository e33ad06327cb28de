"""Fixtures for driving the authorization server the way real clients do.

OAuth clients are authlib's `AsyncOAuth2Client` (httpx) talking to the real app through
`httpx.ASGITransport`; the person at the browser is an httpx client with a cookie jar that reads
the sign-in and consent forms and submits them, exactly as a browser without JavaScript would.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client
from redis.asyncio import Redis
from starlette.applications import Starlette

from auth.oauth.data import create_client
from auth.passwords import hash_password
from db.engine import Sessions
from db.models import User
from resolvers.users import create_user
from tests.conftest import without_cost

ISSUER = "http://127.0.0.1:8000"  # the settings' default issuer: URLs below are built from it
AUTHORIZE = f"{ISSUER}/oauth/authorize"
TOKEN = f"{ISSUER}/oauth/token"
REVOKE = f"{ISSUER}/oauth/revoke"
INTROSPECT = f"{ISSUER}/oauth/introspect"
USERINFO = f"{ISSUER}/oauth/userinfo"
REDIRECT_URI = "https://app.example.test/callback"
PASSWORD = "plum-orbit-canyon-41"
WEB_SCOPES = ["openid", "profile", "email", "tasks:read", "tasks:write", "documents:read"]
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"

# For tests whose outcome cannot depend on the database: one backend is enough.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

# This suite's own Redis database, so parallel suites on one machine never see each other's keys.
OAUTH_REDIS_URL = os.environ.get("TANDEM_TEST_OAUTH_REDIS_URL", "redis://127.0.0.1:6379/3")

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True)
class RegisteredClient:
    client_id: str
    secret: str | None


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """The OAuth suite's Redis, emptied of our keys afterwards; unreachable Redis fails the test."""
    redis = Redis.from_url(OAUTH_REDIS_URL)
    try:
        await redis.ping()
    except OSError as exc:  # redis' ConnectionError is an OSError
        pytest.fail(f"Redis is not reachable at {OAUTH_REDIS_URL} ({exc}); run scripts/ensure-services", pytrace=False)
    try:
        yield OAUTH_REDIS_URL
    finally:
        keys = [key async for key in redis.scan_iter(match="tandem:oauth:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """The browser (and any plain HTTP caller): cookies kept, redirects not followed."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as client:
        yield client


@pytest.fixture
def oauth_client(app: Starlette) -> Callable[..., AsyncOAuth2Client]:
    """authlib's OAuth client for a registered client, talking to the app in-process."""

    def build(registered: RegisteredClient, **kwargs: Any) -> AsyncOAuth2Client:
        kwargs.setdefault("token_endpoint_auth_method", "client_secret_basic" if registered.secret else "none")
        return AsyncOAuth2Client(
            client_id=registered.client_id, client_secret=registered.secret,
            transport=httpx.ASGITransport(app=app), base_url=ISSUER, **kwargs,
        )

    return build


@pytest.fixture
async def person(sessions: Sessions) -> User:
    return await create_user(sessions, email="pat@example.test", name="Pat", password_hash=hash_password(PASSWORD))


@pytest.fixture
async def web_app(sessions: Sessions) -> RegisteredClient:
    """A public browser app (single-page app): code + PKCE, rotating refresh tokens, no secret."""
    client, secret = await create_client(
        sessions, name="Web App", redirect_uris=[REDIRECT_URI], scope=WEB_SCOPES,
        grant_types=["authorization_code", "refresh_token"], confidential=False,
    )
    return RegisteredClient(client.client_id, secret)


@pytest.fixture
async def resource_server(sessions: Sessions) -> RegisteredClient:
    """A confidential API that checks Tandem tokens meant for it (`aud` tandem) at the introspection endpoint."""
    client, secret = await create_client(
        sessions, name="Tandem API", redirect_uris=[], scope=[], grant_types=[], confidential=True,
        resource_audience="tandem",
    )
    return RegisteredClient(client.client_id, secret)


@pytest.fixture
async def service(sessions: Sessions) -> RegisteredClient:
    """A confidential service account: client credentials and token exchange."""
    client, secret = await create_client(
        sessions, name="Reports", redirect_uris=[], scope=["tasks:read", "documents:read"],
        grant_types=["client_credentials", TOKEN_EXCHANGE], confidential=True,
    )
    return RegisteredClient(client.client_id, secret)


def csrf_of(page: httpx.Response) -> str:
    found = _CSRF.search(page.text)
    assert found, f"no CSRF field on the page ({page.status_code}): {page.text[:500]}"
    return found.group(1)


async def approve(
    http: httpx.AsyncClient, authorization_url: str, *, email: str = "pat@example.test", password: str = PASSWORD,
    decision: str = "allow",
) -> httpx.Response:
    """Sign in on the login page, answer the consent page; returns the final (redirect) response."""
    login = await http.get(authorization_url)
    assert login.status_code == 200, login.text
    consent = await http.post(authorization_url, data={
        "csrf_token": csrf_of(login), "action": "login", "username": email, "password": password,
    })
    assert consent.status_code == 200 and "Allow" in consent.text, consent.text
    return await http.post(authorization_url, data={
        "csrf_token": csrf_of(consent), "action": "consent", "decision": decision,
    })


def query_of(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


@dataclass
class CodeFlow:
    oauth: AsyncOAuth2Client
    verifier: str
    url: str
    state: str


def start_code_flow(oauth: AsyncOAuth2Client, scope: str = "openid profile tasks:read", **extra: Any) -> CodeFlow:
    verifier = generate_token(48)
    url, state = oauth.create_authorization_url(AUTHORIZE, code_verifier=verifier, scope=scope, **extra)
    return CodeFlow(oauth, verifier, url, state)


async def code_flow_tokens(
    http: httpx.AsyncClient, oauth_client: Callable[..., AsyncOAuth2Client], registered: RegisteredClient,
    scope: str = "openid profile tasks:read",
) -> dict[str, Any]:
    """The whole authorization code flow with PKCE; returns the token response."""
    oauth = oauth_client(registered, redirect_uri=REDIRECT_URI, code_challenge_method="S256")
    flow = start_code_flow(oauth, scope)
    redirect = await approve(http, flow.url)
    token: dict[str, Any] = await oauth.fetch_token(
        TOKEN, authorization_response=redirect.headers["location"], code_verifier=flow.verifier)
    return token


async def viewer_status(http: httpx.AsyncClient, access_token: str) -> tuple[int, dict[str, Any]]:
    response = await http.post("/graphql", json={"query": "{ viewer { name } }"},
                               headers={"Authorization": f"Bearer {access_token}"})
    return response.status_code, without_cost(response.json())
