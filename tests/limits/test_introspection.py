"""Who may introspect (`TANDEM_INTROSPECTION`), on every transport, and the standard introspection
query that IDEs and codegen send passing the depth limit wherever introspection is allowed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import websockets
from graphql import get_introspection_query

from app.main import create_app
from app.settings import Settings
from db.models import User
from persisted_queries.ids import sha256_hex
from tests.limits.conftest import Limited, LimitedApp
from tests.live_server import LiveServer
from tests.realtime.conftest import LEGACY_WS, TRANSPORT_WS

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

SCHEMA_TYPES = "{ __schema { types { name } } }"
MUTATION_TYPE = '{ __type(name: "Mutation") { name fields { name } } }'
# What Apollo Sandbox, Postman, Insomnia, graphql-codegen and rover send: `ofType` nested 9 times.
STANDARD = get_introspection_query()
STANDARD_FULL = get_introspection_query(descriptions=True, specified_by_url=True, directive_is_repeatable=True,
                                        schema_description=True, input_value_deprecation=True)


def _codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


async def _get(limited: Limited, query: str, token: str | None = None) -> Any:
    headers = {"Accept": "application/graphql-response+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return await limited.http.get("/graphql", params={"query": query}, headers=headers)


@pytest.mark.parametrize("query", [SCHEMA_TYPES, MUTATION_TYPE, STANDARD])
async def test_production_refuses_anonymous_introspection(limited_app: LimitedApp, query: str) -> None:
    async with limited_app(env="production") as limited:
        for response in (await limited.query(query), await _get(limited, query)):
            assert response.status_code == 401, response.text
            assert _codes(response.json()) == ["UNAUTHENTICATED"]
            assert "data" not in response.json()
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert limited.resolved == []


async def test_typename_is_not_introspection(limited_app: LimitedApp) -> None:
    async with limited_app(env="production") as limited:
        response = await limited.query("{ __typename }")
    assert response.status_code == 200 and response.json()["data"] == {"__typename": "Query"}


async def test_production_lets_a_signed_in_caller_run_the_standard_query(limited_app: LimitedApp, alice: User) -> None:
    async with limited_app(env="production") as limited:
        for query in (STANDARD, STANDARD_FULL):
            response = await limited.query(query, as_user=alice)
            assert response.status_code == 200, response.text
            assert "errors" not in response.json()
            assert response.json()["data"]["__schema"]["queryType"]["name"] == "Query"


@pytest.mark.parametrize("query", [STANDARD, STANDARD_FULL])
async def test_development_runs_the_standard_query_within_the_limits(limited_app: LimitedApp, query: str) -> None:
    async with limited_app() as limited:
        response = await limited.query(query)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body
    types = {t["name"] for t in body["data"]["__schema"]["types"]}
    assert {"Query", "Mutation", "Subscription", "Task", "Document"} <= types
    cost = body["extensions"]["cost"]
    assert 0 < cost["actualQueryCost"] <= cost["requestedQueryCost"] < 1_000


async def test_depth_still_counts_outside_introspection(limited_app: LimitedApp, alice: User) -> None:
    deep = "{ __schema { queryType { name } } viewer { documents(first: 1) { nodes { owner { name } } } } }"
    async with limited_app(max_query_depth=4) as limited:
        response = await limited.query(deep, as_user=alice)
    assert _codes(response.json()) == ["QUERY_TOO_DEEP"]


async def test_aliases_under_introspection_still_count(limited_app: LimitedApp) -> None:
    aliased = "{ __schema { " + " ".join(f"t{i}: types {{ name }}" for i in range(20)) + " } }"
    async with limited_app() as limited:
        response = await limited.query(aliased)
    assert _codes(response.json()) == ["QUERY_TOO_COMPLEX"]


async def test_off_refuses_everyone(limited_app: LimitedApp, alice: User) -> None:
    async with limited_app(introspection="off") as limited:
        signed_in = await limited.query(MUTATION_TYPE, as_user=alice)
        anonymous = await limited.query(MUTATION_TYPE)
    assert _codes(signed_in.json()) == ["FORBIDDEN"]
    assert _codes(anonymous.json()) == ["FORBIDDEN"]
    assert len(signed_in.json()["errors"]) == 1  # one error, not one per introspection field


async def test_on_lets_anonymous_callers_introspect_in_production(limited_app: LimitedApp) -> None:
    async with limited_app(env="production", introspection="on") as limited:
        response = await limited.query(MUTATION_TYPE)
    assert response.status_code == 200 and response.json()["data"]["__type"]["name"] == "Mutation"


async def test_a_document_cached_for_a_signed_in_caller_is_refused_to_an_anonymous_one(
    limited_app: LimitedApp, alice: User
) -> None:
    async with limited_app(env="production") as limited:
        for _ in range(3):  # the third takes the short way for known documents
            assert (await limited.query(MUTATION_TYPE, as_user=alice)).status_code == 200
        assert _codes((await limited.query(MUTATION_TYPE)).json()) == ["UNAUTHENTICATED"]
        # The same through an APQ hash the signed-in caller registered.
        extensions = {"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(MUTATION_TYPE)}}
        registered = await limited.post({"query": MUTATION_TYPE, "extensions": extensions}, as_user=alice)
        assert registered.status_code == 200
        assert (await limited.post({"extensions": extensions}, as_user=alice)).status_code == 200
        refused = await limited.post({"extensions": extensions})
        assert _codes(refused.json()) == ["UNAUTHENTICATED"]


async def _receive(socket: Any) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), 10))
    return message


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_websockets_refuse_introspection_when_off(
    settings: Settings, protocol: str, alice: User, token_for: Callable[..., str]
) -> None:
    # Sockets always need a token (anonymous connection_init is refused), so `off` is what applies there.
    production = settings.model_copy(update={"env": "production", "introspection": "off"})
    async with LiveServer(create_app(production)) as live:
        async with websockets.connect(f"{live.ws_url}/graphql", subprotocols=[protocol]) as socket:
            payload = {"Authorization": f"Bearer {token_for(alice)}"}
            await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
            assert (await _receive(socket))["type"] == "connection_ack"
            start = "subscribe" if protocol == TRANSPORT_WS else "start"
            await socket.send(json.dumps({"type": start, "id": "1", "payload": {"query": SCHEMA_TYPES}}))
            answer = await _receive(socket)
            assert answer["type"] == "error", answer
            errors = answer["payload"] if isinstance(answer["payload"], list) else [answer["payload"]]
            # The legacy protocol runs subscriptions only, and introspection is a query.
            expected = "FORBIDDEN" if protocol == TRANSPORT_WS else "BAD_USER_INPUT"
            assert [error["extensions"]["code"] for error in errors] == [expected]


async def test_the_stream_endpoint_refuses_anonymous_introspection_in_production(settings: Settings) -> None:
    production = settings.model_copy(update={"env": "production"})
    async with LiveServer(create_app(production)) as live:
        async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
            response = await http.post("/graphql/stream", json={"query": SCHEMA_TYPES},
                                       headers={"Accept": "text/event-stream"})
    assert "UNAUTHENTICATED" in response.text and "queryType" not in response.text and "types" not in response.text
