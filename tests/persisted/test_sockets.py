"""Trusted documents on the streaming transports: a trusted-documents-only client subscribes (and
queries) over WebSocket and `POST /graphql/stream` with trusted documents only, as at `/graphql`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from app.main import create_app
from app.settings import Settings
from db.engine import Sessions
from db.models import User
from tests.conftest import global_id
from tests.factories import make_document
from tests.live_server import LiveServer
from tests.persisted.conftest import OPERATIONS, sha256, trusted_claims
from tests.realtime.conftest import LEGACY_WS, TRANSPORT_WS

FEED = "subscription DocumentFeed($id: ID!) {\n  documentEvents(documentId: $id) {\n    kind\n  }\n}"
FEED_ID = sha256(FEED)
UNLISTED = "subscription($id: ID!) { documentEvents(documentId: $id) { kind } }"
DASHBOARD = OPERATIONS["ViewerDashboard"]


@pytest.fixture
def manifests(manifests: Path) -> Path:
    (manifests / "realtime-app.json").write_text(json.dumps({
        "format": "apollo-persisted-query-manifest", "version": 1,
        "operations": [{"id": FEED_ID, "name": "DocumentFeed", "type": "subscription", "body": FEED}],
    }))
    return manifests


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[LiveServer]:
    async with LiveServer(create_app(settings)) as server:
        yield server


@pytest.fixture
def trusted_token(token_for: Callable[..., str], alice: User) -> str:
    return token_for(alice, None, extra=trusted_claims("mobile-app.json", "realtime-app.json"))


@pytest.fixture
async def document_id(sessions: Sessions, alice: User) -> str:
    return global_id("Document", (await make_document(sessions, alice)).id)


async def _receive(socket: Any) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), 10))
    return message


async def _open(live: LiveServer, token: str, protocol: str = TRANSPORT_WS) -> Any:
    socket = await websockets.connect(f"{live.ws_url}/graphql", subprotocols=[protocol])
    await socket.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
    assert await _receive(socket) == {"type": "connection_ack"}
    return socket


async def test_a_trusted_only_client_subscribes_with_trusted_documents_only(
    live: LiveServer, trusted_token: str, document_id: str
) -> None:
    socket = await _open(live, trusted_token)
    try:
        await socket.send(json.dumps({"type": "subscribe", "id": "text",
                                      "payload": {"query": UNLISTED, "variables": {"id": document_id}}}))
        refused = await _receive(socket)
        assert refused["id"] == "text" and refused["type"] == "error"
        assert refused["payload"][0]["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED"
        await socket.send(json.dumps({"type": "subscribe", "id": "doc",
                                      "payload": {"documentId": f"sha256:{FEED_ID}", "variables": {"id": document_id}}}))
        joined = await _receive(socket)
        assert (joined["id"], joined["type"]) == ("doc", "next")
        assert joined["payload"]["data"] == {"documentEvents": {"kind": "JOINED"}}
        # The same rule for queries, and an APQ hash of a trusted document works as its id does.
        await socket.send(json.dumps({"type": "subscribe", "id": "q", "payload": {"query": "{ viewer { name } }"}}))
        assert (await _receive(socket))["payload"][0]["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED"
        await socket.send(json.dumps({"type": "subscribe", "id": "apq", "payload": {
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": DASHBOARD["id"]}}}}))
        answer = await _receive(socket)
        assert answer["type"] == "next" and answer["payload"]["data"]["viewer"]["name"] == "Alice"
    finally:
        await socket.close()


async def test_the_legacy_protocol_holds_the_same_rule(live: LiveServer, trusted_token: str, document_id: str) -> None:
    socket = await _open(live, trusted_token, LEGACY_WS)
    try:
        await socket.send(json.dumps({"type": "start", "id": "1",
                                      "payload": {"query": UNLISTED, "variables": {"id": document_id}}}))
        refused = await _receive(socket)
        assert refused["type"] == "error" and refused["payload"]["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED"
        await socket.send(json.dumps({"type": "start", "id": "2",
                                      "payload": {"query": FEED, "variables": {"id": document_id}}}))
        assert (await _receive(socket))["payload"]["data"] == {"documentEvents": {"kind": "JOINED"}}
    finally:
        await socket.close()


async def test_other_clients_send_any_text_and_unknown_ids_are_not_found(
    live: LiveServer, token_for: Callable[..., str], alice: User, document_id: str
) -> None:
    socket = await _open(live, token_for(alice))
    try:
        await socket.send(json.dumps({"type": "subscribe", "id": "text",
                                      "payload": {"query": UNLISTED, "variables": {"id": document_id}}}))
        assert (await _receive(socket))["payload"]["data"] == {"documentEvents": {"kind": "JOINED"}}
        await socket.send(json.dumps({"type": "subscribe", "id": "nope", "payload": {"documentId": f"sha256:{'0' * 64}"}}))
        assert (await _receive(socket))["payload"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
        await socket.send(json.dumps({"type": "subscribe", "id": "bad", "payload": {"query": 42}}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await _receive(socket)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400
    finally:
        await socket.close()


async def test_the_stream_endpoint_holds_the_same_rule(live: LiveServer, trusted_token: str, document_id: str) -> None:
    headers = {"Authorization": f"Bearer {trusted_token}", "Accept": "text/event-stream"}
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
        refused = await http.post("/graphql/stream", headers=headers,
                                  json={"query": UNLISTED, "variables": {"id": document_id}})
        assert refused.status_code == 400
        error = refused.json()["errors"][0]
        assert error["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED" and error["extensions"]["requestId"]
        body = {"documentId": f"sha256:{FEED_ID}", "variables": {"id": document_id}}
        async with http.stream("POST", "/graphql/stream", json=body, headers=headers) as response:
            assert response.status_code == 200, await response.aread()
            lines = response.aiter_lines()
            while not (line := await asyncio.wait_for(anext(lines), 10)).startswith("data:"):
                pass
            assert json.loads(line.removeprefix("data:"))["data"] == {"documentEvents": {"kind": "JOINED"}}
