"""Persisted queries over real sockets (uvicorn on a loopback port), with the headers real clients send."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from tests.conftest import codes, without_cost
from tests.live_server import LiveServer
from tests.persisted.conftest import OPERATIONS, apq

# Apollo Client 3.8+ and urql send these Accept headers.
APOLLO_ACCEPT = "application/graphql-response+json,application/json;q=0.9"
URQL_ACCEPT = ("application/graphql-response+json, application/graphql+json, application/json, "
               "text/event-stream, multipart/mixed")
QUERY = "query Who { viewer { id } }"


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with LiveServer(create_app(settings)) as server, httpx.AsyncClient(base_url=server.url) as http:
        yield http


@pytest.mark.parametrize("accept", [APOLLO_ACCEPT, URQL_ACCEPT])
async def test_apq_round_trip(live: httpx.AsyncClient, accept: str) -> None:
    headers = {"Accept": accept, "Content-Type": "application/json"}
    hashed = json.dumps({"operationName": "Who", "variables": {}, "extensions": apq(QUERY)})
    first = await live.post("/graphql", content=hashed, headers=headers)
    assert first.status_code == 404  # Apollo Client reads the errors of a non-2xx body too
    assert first.headers["content-type"].startswith("application/graphql-response+json")
    assert codes(first.json()) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert first.json()["errors"][0]["message"] == "PersistedQueryNotFound"

    full = json.dumps({"operationName": "Who", "variables": {}, "query": QUERY, "extensions": apq(QUERY)})
    retry = await live.post("/graphql", content=full, headers=headers)
    assert retry.status_code == 200
    assert without_cost(retry.json()) == {"data": {"viewer": None}}

    url = "/graphql?" + urlencode({"operationName": "Who", "variables": "{}",
                                   "extensions": json.dumps(apq(QUERY), separators=(",", ":"))})
    by_get = await live.get(url, headers={"Accept": accept})
    assert without_cost(by_get.json()) == {"data": {"viewer": None}}
    assert by_get.headers["cache-control"] == "public, max-age=60"
    cached = await live.get(url, headers={"Accept": accept, "If-None-Match": by_get.headers["etag"]})
    assert cached.status_code == 304


async def test_document_id_over_get(live: httpx.AsyncClient) -> None:
    dashboard = OPERATIONS["ViewerDashboard"]
    response = await live.get("/graphql", params={"documentId": f"sha256:{dashboard['id']}"},
                              headers={"Accept": "application/graphql-response+json"})
    assert response.status_code == 200
    assert without_cost(response.json()) == {"data": {"viewer": None}}
    assert "etag" in response.headers
