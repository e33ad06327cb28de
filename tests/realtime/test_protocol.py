"""The WebSocket protocols as the graphql-ws protocol document prescribes, and how a socket authenticates.

Raw `websockets` connections where the exact frames and close codes matter; gql for a real client.
These do not exercise the database beyond a user lookup, so they run on SQLite only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import websockets
from gql import GraphQLRequest
from gql.transport.exceptions import TransportQueryError

from app.main import create_app
from app.settings import Settings
from db.models import User
from tests.conftest import global_id
from tests.factories import make_document
from tests.live_server import LiveServer
from tests.realtime.conftest import LEGACY_WS, TRANSPORT_WS, next_within, subscribe, ws_session

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

EVENTS = "subscription($id: ID!) { documentEvents(documentId: $id) { kind version user { name } } }"
CURSOR = """mutation($id: ID!) { updatePresence(input: {documentId: $id, cursor: {anchor: 1, head: 3}}) {
  expiresAt userErrors { code } } }"""


async def _closed_with(socket: Any) -> tuple[int, str]:
    """Read until the server closes; the close code and reason it sent."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(socket.recv(), 10)
    assert closed.value.rcvd is not None, "the server closed without a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def _init(socket: Any, token: str) -> None:
    await socket.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
    assert json.loads(await asyncio.wait_for(socket.recv(), 10)) == {"type": "connection_ack"}


def _url(live: LiveServer, query: str = "") -> str:
    return f"{live.ws_url}/graphql{query}"


async def test_connection_init_timeout_closes_4408(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"ws_connection_init_timeout_seconds": 0.3}))
    async with LiveServer(app) as live, websockets.connect(_url(live), subprotocols=[TRANSPORT_WS]) as socket:
        assert await _closed_with(socket) == (4408, "Connection initialisation timeout")


async def test_protocol_violations_close_with_their_codes(live: LiveServer, token_for: Callable[..., str], alice: User) -> None:
    token = token_for(alice)
    async with websockets.connect(_url(live), subprotocols=[TRANSPORT_WS]) as socket:
        await _init(socket, token)
        await socket.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert (await _closed_with(socket))[0] == 4429  # duplicate connection_init
    async with websockets.connect(_url(live), subprotocols=[TRANSPORT_WS]) as socket:
        await socket.send(json.dumps({"type": "subscribe", "id": "1", "payload": {"query": "{ viewer { name } }"}}))
        assert (await _closed_with(socket))[0] == 4401  # subscribe before connection_ack
    async with websockets.connect(_url(live), subprotocols=[TRANSPORT_WS]) as socket:
        await _init(socket, token)
        document = {"query": "subscription { taskEvents { kind } }"}
        await socket.send(json.dumps({"type": "subscribe", "id": "same", "payload": document}))
        await socket.send(json.dumps({"type": "subscribe", "id": "same", "payload": document}))
        assert (await _closed_with(socket))[0] == 4409  # duplicate operation id
    no_document = [{}, {"variables": {}}, {"query": None}, {"extensions": {}}, {"documentId": 42},
                   {"extensions": {"persistedQuery": "x"}}]
    for garbage in ["not json", json.dumps({"type": "nonsense"}), json.dumps({"type": "subscribe"}),
                    *(json.dumps({"type": "subscribe", "id": "1", "payload": p}) for p in no_document)]:
        async with websockets.connect(_url(live), subprotocols=[TRANSPORT_WS]) as socket:
            await _init(socket, token)
            await socket.send(garbage)
            assert (await _closed_with(socket))[0] == 4400, garbage
    async with websockets.connect(_url(live), subprotocols=["unknown-protocol"]) as socket:
        assert (await _closed_with(socket))[0] == 4406


async def test_ping_is_answered_with_pong(live: LiveServer, token_for: Callable[..., str], alice: User) -> None:
    async with websockets.connect(_url(live), subprotocols=[TRANSPORT_WS]) as socket:
        await _init(socket, token_for(alice))
        await socket.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(socket.recv(), 10)) == {"type": "pong"}


async def test_missing_or_bad_credentials_close_4403(live: LiveServer, token_for: Callable[..., str], alice: User) -> None:
    for payload in [{}, {"Authorization": "Bearer not-a-jwt"}, {"Authorization": "Basic abc"},
                    {"Authorization": f"Bearer {token_for(alice, ttl_seconds=-120)}"}]:
        async with websockets.connect(_url(live), subprotocols=[TRANSPORT_WS]) as socket:
            await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
            assert (await _closed_with(socket))[0] == 4403, payload


async def test_legacy_graphql_ws_protocol_streams_events(ws: Callable[..., Any], sessions, alice: User, http: httpx.AsyncClient,
                                                          token_for: Callable[..., str]) -> None:  # type: ignore[no-untyped-def]
    document = await make_document(sessions, alice)
    doc_id = global_id("Document", document.id)
    async with ws(alice, LEGACY_WS) as session:
        events = subscribe(session, EVENTS, {"id": doc_id})
        joined = await next_within(events)
        assert joined["documentEvents"] == {"kind": "JOINED", "version": 0, "user": {"name": "Alice"}}
        await http.post("/graphql", json={"query": CURSOR, "variables": {"id": doc_id}},
                        headers={"Authorization": f"Bearer {token_for(alice)}"})
        assert (await next_within(events))["documentEvents"]["kind"] == "CURSOR"


async def test_ticket_authenticates_once(live: LiveServer, http: httpx.AsyncClient, token_for: Callable[..., str],
                                         sessions, alice: User) -> None:  # type: ignore[no-untyped-def]
    document = await make_document(sessions, alice)
    response = await http.post("/auth/ws-ticket", headers={"Authorization": f"Bearer {token_for(alice)}"})
    assert response.status_code == 201 and response.headers["cache-control"] == "no-store"
    ticket = response.json()["ticket"]
    assert response.json()["expiresIn"] == 30
    async with ws_session(_url(live, f"?ticket={ticket}"), None) as session:  # no token in connection_init
        events = subscribe(session, EVENTS, {"id": global_id("Document", document.id)})
        assert (await next_within(events))["documentEvents"]["user"] == {"name": "Alice"}  # bound to Alice
    # Single use: the same ticket again is refused.
    async with websockets.connect(_url(live, f"?ticket={ticket}"), subprotocols=[TRANSPORT_WS]) as socket:
        await socket.send(json.dumps({"type": "connection_init"}))
        assert (await _closed_with(socket))[0] == 4403


async def test_ticket_needs_a_valid_token(http: httpx.AsyncClient) -> None:
    for headers in [{}, {"Authorization": "Bearer nope"}]:
        response = await http.post("/auth/ws-ticket", headers=headers)
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["code"] == "UNAUTHENTICATED" and error["requestId"]


async def test_expired_ticket_is_refused(settings: Settings, token_for: Callable[..., str], alice: User) -> None:
    app = create_app(settings.model_copy(update={"ws_ticket_ttl_seconds": 0}))
    async with app.router.lifespan_context(app), LiveServer(app) as live:
        async with httpx.AsyncClient(base_url=live.url) as http:
            token = app.state.tokens.issue_access_token(str(alice.id), ["documents:read"])
            ticket = (await http.post("/auth/ws-ticket", headers={"Authorization": f"Bearer {token}"})).json()["ticket"]
        async with websockets.connect(_url(live, f"?ticket={ticket}"), subprotocols=[TRANSPORT_WS]) as socket:
            await socket.send(json.dumps({"type": "connection_init"}))
            assert (await _closed_with(socket))[0] == 4403


async def test_socket_closes_when_its_token_expires(live: LiveServer, token_for: Callable[..., str], alice: User) -> None:
    async with websockets.connect(_url(live), subprotocols=[TRANSPORT_WS]) as socket:
        await _init(socket, token_for(alice, ttl_seconds=1))
        assert await _closed_with(socket) == (4403, "Forbidden: the access token expired")


async def test_a_fresh_token_in_a_ping_keeps_the_socket_open(live: LiveServer, token_for: Callable[..., str],
                                                             alice: User, bob: User) -> None:
    async with websockets.connect(_url(live), subprotocols=[TRANSPORT_WS]) as socket:
        await _init(socket, token_for(alice, ttl_seconds=1))
        await socket.send(json.dumps({"type": "ping", "payload": {"Authorization": f"Bearer {token_for(alice)}"}}))
        assert json.loads(await asyncio.wait_for(socket.recv(), 10)) == {"type": "pong"}
        await asyncio.sleep(1.5)  # past the first token's expiry
        await socket.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(socket.recv(), 10)) == {"type": "pong"}
        # Someone else's token cannot take the connection over.
        await socket.send(json.dumps({"type": "ping", "payload": {"Authorization": f"Bearer {token_for(bob)}"}}))
        assert (await _closed_with(socket))[0] == 4403


async def test_subscription_errors_have_codes(ws: Callable[..., Any], sessions, alice: User, bob: User) -> None:  # type: ignore[no-untyped-def]
    document = await make_document(sessions, alice)
    async with ws(bob) as session:
        with pytest.raises(TransportQueryError) as error:
            await next_within(subscribe(session, EVENTS, {"id": global_id("Document", document.id)}))
    assert error.value.errors is not None
    assert error.value.errors[0]["extensions"]["code"] == "NOT_FOUND"
    assert error.value.errors[0]["extensions"]["requestId"]


async def test_app_shutdown_closes_sockets_with_1012(live: LiveServer, token_for: Callable[..., str], alice: User) -> None:
    async with websockets.connect(_url(live), subprotocols=[TRANSPORT_WS]) as socket:
        await _init(socket, token_for(alice))
        live_stop = asyncio.create_task(asyncio.to_thread(live.stop))
        code, _ = await _closed_with(socket)
        await live_stop
    assert code == 1012


async def test_queries_and_mutations_also_run_over_the_socket(ws: Callable[..., Any], sessions, alice: User) -> None:  # type: ignore[no-untyped-def]
    document = await make_document(sessions, alice)
    doc_id = global_id("Document", document.id)
    edit = """mutation($id: ID!) { editDocumentText(input: {documentId: $id, edits: [{index: 0, insert: "hi"}], baseVersion: 0}) {
      version } }"""
    async with ws(alice) as session:
        assert (await session.execute(GraphQLRequest(edit, variable_values={"id": doc_id})))["editDocumentText"] == {"version": 1}
        read = await session.execute(GraphQLRequest("query($id: ID!) { document(id: $id) { content version } }",
                                                    variable_values={"id": doc_id}))
    assert read["document"] == {"content": "hi", "version": 1}


async def test_tickets_work_across_instances_through_redis(redis_settings: Settings, token_for: Callable[..., str],
                                                           sessions, alice: User) -> None:  # type: ignore[no-untyped-def]
    document = await make_document(sessions, alice)
    async with LiveServer(create_app(redis_settings)) as first, LiveServer(create_app(redis_settings)) as second:
        async with httpx.AsyncClient(base_url=first.url) as http:
            response = await http.post("/auth/ws-ticket", headers={"Authorization": f"Bearer {token_for(alice)}"})
        ticket = response.json()["ticket"]
        async with ws_session(f"{second.ws_url}/graphql?ticket={ticket}", None) as session:  # redeemed elsewhere
            events = subscribe(session, EVENTS, {"id": global_id("Document", document.id)})
            assert (await next_within(events))["documentEvents"]["user"] == {"name": "Alice"}
        async with websockets.connect(f"{first.ws_url}/graphql?ticket={ticket}", subprotocols=[TRANSPORT_WS]) as socket:
            await socket.send(json.dumps({"type": "connection_init"}))
            assert (await _closed_with(socket))[0] == 4403  # and only once, anywhere


async def test_each_operation_on_a_socket_reads_afresh(ws: Callable[..., Any], http: httpx.AsyncClient,  # type: ignore[no-untyped-def]
                                                       token_for: Callable[..., str], sessions, alice: User) -> None:
    document = await make_document(sessions, alice)
    doc_id = global_id("Document", document.id)
    read = GraphQLRequest("query($id: ID!) { document(id: $id) { content version } }", variable_values={"id": doc_id})
    edit = """mutation($id: ID!) { editDocumentText(input: {documentId: $id, edits: [{index: 0, insert: "new"}], baseVersion: 0}) {
      version } }"""
    async with ws(alice) as session:
        assert (await session.execute(read))["document"] == {"content": "", "version": 0}
        response = await http.post("/graphql", json={"query": edit, "variables": {"id": doc_id}},
                                   headers={"Authorization": f"Bearer {token_for(alice)}"})
        assert response.json()["data"]["editDocumentText"]["version"] == 1
        assert (await session.execute(read))["document"] == {"content": "new", "version": 1}
