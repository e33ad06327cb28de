"""HTTP status and `WWW-Authenticate` at /graphql (RFC 6750 §3): 401 for missing or bad tokens only."""

from __future__ import annotations

import httpx
import pytest

from db.models import User
from tests.conftest import GRAPHQL_RESPONSE, without_cost

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

TASKS = "{ tasks { totalCount } }"


async def _post(client: httpx.AsyncClient, query: str, token: str | None = None, accept: str = GRAPHQL_RESPONSE
                ) -> httpx.Response:
    headers = {"Accept": accept, **({"Authorization": f"Bearer {token}"} if token else {})}
    return await client.post("/graphql", json={"query": query}, headers=headers)


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, "application/json"])
async def test_no_token_where_one_is_needed_is_a_401_challenge(client: httpx.AsyncClient, accept: str) -> None:
    response = await _post(client, TASKS, accept=accept)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="tandem"'  # no error code: §3.1
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_anonymous_queries_that_need_no_token_stay_200(client: httpx.AsyncClient) -> None:
    response = await _post(client, "{ viewer { name } }")
    assert response.status_code == 200 and "www-authenticate" not in response.headers
    assert without_cost(response.json()) == {"data": {"viewer": None}}


async def test_a_bad_token_is_invalid_token(client: httpx.AsyncClient) -> None:
    response = await _post(client, "{ viewer { name } }", token="not.a.jwt")
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="tandem", error="invalid_token", error_description="')


async def test_a_missing_scope_is_forbidden_not_unauthenticated(client: httpx.AsyncClient, app: object,
                                                                alice: User) -> None:
    token = app.state.tokens.issue_access_token(str(alice.id), {"profile"})  # type: ignore[attr-defined]
    response = await _post(client, TASKS, token=token)
    assert response.status_code == 200 and "www-authenticate" not in response.headers
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
