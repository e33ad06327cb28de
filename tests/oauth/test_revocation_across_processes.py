"""Revocation across server processes: two real `tandem serve` processes
sharing the SQLite file and a private `redis-server` (its command counters see their commands only).

What an attacker holding a revoked token meets: whichever instance the token is sent to refuses it
within moments of the revocation at another, while a signed-in request still costs one Redis round
trip (the rate limiter's charge), not two.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client

from app.settings import Settings
from db.models import User
from tests.conftest import GRAPHQL_RESPONSE
from tests.live_server import server_processes
from tests.oauth.conftest import RegisteredClient, code_flow_tokens
from tests.redis_server import PrivateRedis

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

OAuthClientFactory = Callable[..., AsyncOAuth2Client]
VIEWER = "{ viewer { name } }"  # costs what it asks for: no refund, so one charge per request
PROMPTLY = 1.0  # seconds from the revocation's answer until the other instance refuses the token
REVOKED = "The access token has been revoked."
# What the limiter's script runs inside Redis: counted by INFO commandstats, but not round trips.
SCRIPT_INNER = {"time", "hmget", "hset", "pexpire"}


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    with PrivateRedis() as server:
        yield server


def env(settings: Settings, redis_server: PrivateRedis, **extra: str) -> dict[str, str]:
    return {
        "TANDEM_DATABASE_URL": settings.database_url,
        "TANDEM_KEYS_DIR": str(settings.keys_dir),
        "TANDEM_REDIS_URL": redis_server.url,
        "TANDEM_LOG_JSON": "false",
        "TANDEM_LOG_LEVEL": "WARNING",
        **extra,
    }


async def ask(http: httpx.AsyncClient, url: str, token: str) -> httpx.Response:
    return await http.post(f"{url}/graphql", json={"query": VIEWER},
                           headers={"Authorization": f"Bearer {token}", "Accept": GRAPHQL_RESPONSE})


async def refused_within(http: httpx.AsyncClient, url: str, token: str, seconds: float = PROMPTLY) -> dict[str, Any]:
    """Ask until the token is refused; fails the test when it is still accepted after `seconds`."""
    started = time.monotonic()
    while (response := await ask(http, url, token)).status_code == 200:
        if time.monotonic() - started > seconds:
            pytest.fail(f"{url} still accepted the revoked token {seconds} s after its revocation")
    assert response.status_code == 401, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_until_answering_from_memory(http: httpx.AsyncClient, url: str, token: str,
                                           redis_server: PrivateRedis) -> None:
    """An instance's replica gets in sync shortly after start-up; until then each check asks Redis."""
    deadline = time.monotonic() + 10
    while True:
        before = redis_server.calls()
        assert (await ask(http, url, token)).status_code == 200
        if "exists" not in redis_server.calls_since(before):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{url} still checks every token in Redis 10 s after start-up")


async def test_a_revoked_token_is_refused_by_every_process_at_one_round_trip_a_request(
    settings: Settings, redis_server: PrivateRedis, http: httpx.AsyncClient, oauth_client: OAuthClientFactory,
    web_app: RegisteredClient, resource_server: RegisteredClient, person: User,
) -> None:
    token = (await code_flow_tokens(http, oauth_client, web_app))["access_token"]
    with server_processes(env(settings, redis_server), 2) as (first, second):
        async with httpx.AsyncClient(timeout=10) as client:
            assert (await ask(client, first, token)).status_code == 200
            await wait_until_answering_from_memory(client, second, token, redis_server)

            before = redis_server.calls()
            for _ in range(20):
                assert (await ask(client, second, token)).json()["data"] == {"viewer": {"name": "Pat"}}
            sent = {name: count for name, count in redis_server.calls_since(before).items()
                    if name not in SCRIPT_INNER and name != "ping"}  # ping: the replicas' heartbeats, load or not
            assert sent == {"evalsha": 20}  # the limiter's charge, and nothing for the revocation check

            revoke = await client.post(f"{first}/oauth/revoke", data={"token": token, "client_id": web_app.client_id})
            assert revoke.status_code == 200
            # The instance that revoked refuses at once; the other within moments, without asking Redis.
            first_answer = await ask(client, first, token)
            assert first_answer.status_code == 401 and first_answer.json()["errors"][0]["message"] == REVOKED
            before = redis_server.calls()
            body = await refused_within(client, second, token)
            assert body["errors"][0]["message"] == REVOKED
            assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
            assert "exists" not in redis_server.calls_since(before)
            # A resource server asking the other instance hears the same.
            introspection = await client.post(f"{second}/oauth/introspect", data={"token": token},
                                              auth=(resource_server.client_id, resource_server.secret or ""))
            assert introspection.json() == {"active": False}


async def test_a_revoked_sessions_tokens_are_refused_by_the_other_process(
    settings: Settings, redis_server: PrivateRedis, http: httpx.AsyncClient, oauth_client: OAuthClientFactory,
    web_app: RegisteredClient, person: User,
) -> None:
    tokens = await code_flow_tokens(http, oauth_client, web_app)
    with server_processes(env(settings, redis_server), 2) as (first, second):
        async with httpx.AsyncClient(timeout=10) as client:
            await wait_until_answering_from_memory(client, second, tokens["access_token"], redis_server)
            # Signing out: revoking the refresh token ends the session, its access tokens included.
            revoke = await client.post(f"{first}/oauth/revoke", data={"token": tokens["refresh_token"],
                                                                      "client_id": web_app.client_id})
            assert revoke.status_code == 200
            body = await refused_within(client, second, tokens["access_token"])
            assert body["errors"][0]["message"] == REVOKED
            refresh = await client.post(f"{second}/oauth/token", data={
                "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": web_app.client_id,
            })
            assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"


async def test_when_redis_goes_away_revocation_works_from_the_database(
    settings: Settings, redis_server: PrivateRedis, http: httpx.AsyncClient, oauth_client: OAuthClientFactory,
    web_app: RegisteredClient, person: User, token_for: Callable[..., str],
) -> None:
    """Failing closed (TANDEM_REVOCATION_FAIL_OPEN=false), so every 200 below is the database's answer."""
    revoked = (await code_flow_tokens(http, oauth_client, web_app))["access_token"]
    during = (await code_flow_tokens(http, oauth_client, web_app))["access_token"]
    unchecked = token_for(person)
    with server_processes(env(settings, redis_server, TANDEM_REVOCATION_FAIL_OPEN="false"), 2) as (first, second):
        async with httpx.AsyncClient(timeout=10) as client:
            await wait_until_answering_from_memory(client, second, unchecked, redis_server)
            revoke = await client.post(f"{first}/oauth/revoke", data={"token": revoked,
                                                                      "client_id": web_app.client_id})
            assert revoke.status_code == 200
            await refused_within(client, second, revoked)
            redis_server.stop()
            assert (await ask(client, second, revoked)).status_code == 401  # known revoked: still refused
            assert (await ask(client, second, unchecked)).status_code == 200  # not revoked, says the database
            # A revocation while Redis is down still works, and reaches the other instance.
            revoke = await client.post(f"{first}/oauth/revoke", data={"token": during,
                                                                      "client_id": web_app.client_id})
            assert revoke.status_code == 200, revoke.text
            body = await refused_within(client, second, during)
            assert body["errors"][0]["message"] == REVOKED
            redis_server.start()  # empty: what was revoked meanwhile goes back in as replicas get in sync
            deadline = time.monotonic() + 15
            with redis_server.client() as redis:
                while len(redis.keys("tandem:oauth:{revoked}:*")) < 2:
                    assert time.monotonic() < deadline, "the revocations did not go back into Redis"
                    await asyncio.sleep(0.1)
            await wait_until_answering_from_memory(client, second, unchecked, redis_server)
            for token in (revoked, during):
                assert (await ask(client, second, token)).status_code == 401
