"""Event streams over a real graphql-ws client: order, replay, presence, revocation, task events."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from gql.transport.exceptions import TransportQueryError
from pycrdt import Doc, Text

from app.main import create_app
from app.settings import Settings
from db.models import User
from tests.conftest import global_id
from tests.factories import make_document, make_task
from tests.live_server import LiveServer
from tests.realtime.conftest import next_within, post_gql, subscribe, ws_session

EVENTS = """subscription($id: ID!, $after: Int) { documentEvents(documentId: $id, afterVersion: $after) {
  kind version update user { name } cursor { anchor head } expiresAt snapshot { label version } } }"""
EDIT = """mutation($id: ID!, $text: String!, $base: Int!) {
  editDocumentText(input: {documentId: $id, edits: [{index: 0, insert: $text}], baseVersion: $base}) { version } }"""
CURSOR = """mutation($id: ID!, $a: Int!) { updatePresence(input: {documentId: $id, cursor: {anchor: $a, head: $a}}) {
  expiresAt } }"""
SNAPSHOT = """mutation($id: ID!) { createDocumentSnapshot(input: {documentId: $id, label: "v"}) { snapshot { id } } }"""
UNSHARE = """mutation($doc: ID!, $user: ID!) { unshareDocument(input: {documentId: $doc, userId: $user}) {
  userErrors { code } } }"""
TASK_EVENTS = "subscription($f: TaskFilter) { taskEvents(filter: $f) { kind taskId task { title labels } } }"
CREATE_TASK = """mutation($title: String!, $doc: ID, $labels: [String!]!) {
  createTask(input: {title: $title, documentId: $doc, labels: $labels}) { task { id } } }"""
UPDATE_TASK = "mutation($id: ID!) { updateTask(input: {id: $id, title: \"renamed\"}) { task { id } } }"
DELETE_TASK = "mutation($id: ID!) { deleteTask(input: {id: $id}) { deletedTaskId } }"


def _text_of(updates: list[str]) -> str:
    doc: Doc = Doc()
    for update in updates:
        doc.apply_update(base64.b64decode(update))
    return str(doc.get("content", type=Text))


async def test_updates_arrive_in_version_order_and_replay_from_any_version(
    ws: Callable[..., Any], http: httpx.AsyncClient, token_for: Callable[..., str], sessions, alice: User, bob: User,  # type: ignore[no-untyped-def]
) -> None:
    document = await make_document(sessions, alice, editors=[bob])
    doc_id = global_id("Document", document.id)
    token = token_for(alice)
    for version in range(3):
        await post_gql(http, token, EDIT, {"id": doc_id, "text": f"{version}", "base": version})
    async with ws(bob) as session:
        events = subscribe(session, EVENTS, {"id": doc_id, "after": 1})  # missed versions 2 and 3
        replayed = [(await next_within(events))["documentEvents"] for _ in range(2)]
        assert [(e["kind"], e["version"]) for e in replayed] == [("UPDATE", 2), ("UPDATE", 3)]
        joined = (await next_within(events))["documentEvents"]
        assert (joined["kind"], joined["version"], joined["user"]) == ("JOINED", 3, {"name": "Bob"})
        await asyncio.gather(*(post_gql(http, token, EDIT, {"id": doc_id, "text": "x", "base": 3}) for _ in range(5)))
        live = [(await next_within(events))["documentEvents"] for _ in range(5)]
        assert [e["version"] for e in live] == [4, 5, 6, 7, 8]
        assert {e["user"]["name"] for e in live} == {"Alice"}
    async with ws(bob) as session:  # a client that has nothing replays everything, from version 0
        events = subscribe(session, EVENTS, {"id": doc_id, "after": 0})
        everything = [(await next_within(events))["documentEvents"] for _ in range(8)]
    assert [e["version"] for e in everything] == list(range(1, 9))
    assert _text_of([e["update"] for e in everything]) == "xxxxx210"


async def test_after_version_must_exist(ws: Callable[..., Any], sessions, alice: User) -> None:  # type: ignore[no-untyped-def]
    document = await make_document(sessions, alice)
    async with ws(alice) as session:
        with pytest.raises(TransportQueryError) as error:
            await next_within(subscribe(session, EVENTS, {"id": global_id("Document", document.id), "after": 5}))
    assert error.value.errors and error.value.errors[0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_presence_cursor_snapshot_and_leaving(
    ws: Callable[..., Any], http: httpx.AsyncClient, token_for: Callable[..., str], sessions, alice: User, bob: User,  # type: ignore[no-untyped-def]
) -> None:
    document = await make_document(sessions, alice, viewers=[bob])
    doc_id = global_id("Document", document.id)
    async with ws(alice) as watcher:
        events = subscribe(watcher, EVENTS, {"id": doc_id})
        assert (await next_within(events))["documentEvents"]["kind"] == "JOINED"  # Alice herself
        async with ws(bob) as other:
            bob_events = subscribe(other, EVENTS, {"id": doc_id})
            await next_within(bob_events)
            joined = (await next_within(events))["documentEvents"]
            assert (joined["kind"], joined["user"]) == ("JOINED", {"name": "Bob"})
            await post_gql(http, token_for(bob), CURSOR, {"id": doc_id, "a": 4})
            cursor = (await next_within(events))["documentEvents"]
            assert cursor["kind"] == "CURSOR" and cursor["cursor"] == {"anchor": 4, "head": 4} and cursor["expiresAt"]
            await post_gql(http, token_for(alice), SNAPSHOT, {"id": doc_id})
            snapshot = (await next_within(events))["documentEvents"]
            assert snapshot["kind"] == "SNAPSHOT" and snapshot["snapshot"] == {"label": "v", "version": 0}
        left = (await next_within(events))["documentEvents"]  # Bob's socket closed
        assert (left["kind"], left["user"]) == ("LEFT", {"name": "Bob"})


async def test_a_cursor_without_a_socket_expires(settings: Settings, token_for: Callable[..., str], sessions,  # type: ignore[no-untyped-def]
                                                 alice: User, bob: User) -> None:
    document = await make_document(sessions, alice, editors=[bob])
    doc_id = global_id("Document", document.id)
    app = create_app(settings.model_copy(update={"presence_timeout_seconds": 0.3}))
    async with LiveServer(app) as live, httpx.AsyncClient(base_url=live.url) as http:
        async with ws_session(f"{live.ws_url}/graphql", token_for(alice)) as session:
            events = subscribe(session, EVENTS, {"id": doc_id})
            await next_within(events)
            await post_gql(http, token_for(bob), CURSOR, {"id": doc_id, "a": 1})  # over HTTP: no socket of Bob's
            assert (await next_within(events))["documentEvents"]["kind"] == "CURSOR"
            left = (await next_within(events))["documentEvents"]
            assert (left["kind"], left["user"]) == ("LEFT", {"name": "Bob"})


async def test_removed_collaborator_stops_receiving_at_once(
    ws: Callable[..., Any], http: httpx.AsyncClient, token_for: Callable[..., str], sessions, alice: User, bob: User,  # type: ignore[no-untyped-def]
) -> None:
    document = await make_document(sessions, alice, editors=[bob])
    doc_id = global_id("Document", document.id)
    async with ws(bob) as session:
        events = subscribe(session, EVENTS, {"id": doc_id})
        await next_within(events)
        await post_gql(http, token_for(alice), EDIT, {"id": doc_id, "text": "visible", "base": 0})
        assert (await next_within(events))["documentEvents"]["version"] == 1
        body = await post_gql(http, token_for(alice), UNSHARE, {"doc": doc_id, "user": global_id("User", bob.id)})
        assert body["data"]["unshareDocument"]["userErrors"] == []
        await post_gql(http, token_for(alice), EDIT, {"id": doc_id, "text": "secret", "base": 1})
        with pytest.raises(TransportQueryError) as error:
            await next_within(events)
    assert error.value.errors and error.value.errors[0]["extensions"]["code"] == "NOT_FOUND"


async def test_deleting_the_document_ends_its_streams(
    ws: Callable[..., Any], http: httpx.AsyncClient, token_for: Callable[..., str], sessions, alice: User, bob: User,  # type: ignore[no-untyped-def]
) -> None:
    document = await make_document(sessions, alice, editors=[bob])
    doc_id = global_id("Document", document.id)
    async with ws(bob) as session:
        events = subscribe(session, EVENTS, {"id": doc_id})
        await next_within(events)
        await post_gql(http, token_for(alice), "mutation($id: ID!) { deleteDocument(input: {id: $id}) { deletedDocumentId } }",
                       {"id": doc_id})
        with pytest.raises(TransportQueryError) as error:
            await next_within(events)
    assert error.value.errors and error.value.errors[0]["extensions"]["code"] == "NOT_FOUND"


async def test_task_events_reach_only_those_who_may_see_the_task(
    ws: Callable[..., Any], http: httpx.AsyncClient, token_for: Callable[..., str], sessions, alice: User, bob: User,  # type: ignore[no-untyped-def]
    carol: User,
) -> None:
    shared = await make_document(sessions, alice, viewers=[bob])
    async with ws(bob) as bobs, ws(carol) as carols:
        bob_events = subscribe(bobs, TASK_EVENTS, {"f": {"label": "ops"}})
        carol_events = subscribe(carols, TASK_EVENTS)
        # gql sends `subscribe` when first iterated: start both, then give the server a moment.
        bob_first = asyncio.create_task(next_within(bob_events, 20))
        carol_first = asyncio.create_task(next_within(carol_events, 20))
        await asyncio.sleep(0.5)
        token = token_for(alice)
        await post_gql(http, token, CREATE_TASK, {"title": "private", "doc": None, "labels": ["ops"]})
        await post_gql(http, token, CREATE_TASK, {"title": "other label", "doc": global_id("Document", shared.id), "labels": []})
        body = await post_gql(http, token, CREATE_TASK, {"title": "shared", "doc": global_id("Document", shared.id),
                                                         "labels": ["ops"]})
        task_id = body["data"]["createTask"]["task"]["id"]
        await post_gql(http, token, UPDATE_TASK, {"id": task_id})
        await post_gql(http, token, DELETE_TASK, {"id": task_id})
        received = [(await bob_first)["taskEvents"]] + [(await next_within(bob_events))["taskEvents"] for _ in range(2)]
        assert received == [
            {"kind": "CREATED", "taskId": task_id, "task": {"title": "shared", "labels": ["ops"]}},
            {"kind": "UPDATED", "taskId": task_id, "task": {"title": "renamed", "labels": ["ops"]}},
            {"kind": "DELETED", "taskId": task_id, "task": None},
        ]
        # Carol sees none of Alice's tasks: her stream stays silent.
        own = await make_task(sessions, carol, "carol's")
        await post_gql(http, token_for(carol), UPDATE_TASK, {"id": global_id("Task", own.id)})
        first = (await carol_first)["taskEvents"]
        assert first["taskId"] == global_id("Task", own.id)


async def test_task_events_need_the_scope(live: LiveServer, token_for: Callable[..., str], alice: User) -> None:
    async with ws_session(f"{live.ws_url}/graphql", token_for(alice, {"documents:read"})) as session:
        with pytest.raises(TransportQueryError) as error:
            await next_within(subscribe(session, TASK_EVENTS))
    assert error.value.errors and error.value.errors[0]["extensions"]["code"] == "FORBIDDEN"


async def test_subscriptions_over_server_sent_events(http: httpx.AsyncClient, token_for: Callable[..., str], sessions,  # type: ignore[no-untyped-def]
                                                     alice: User) -> None:
    document = await make_document(sessions, alice)
    doc_id = global_id("Document", document.id)
    headers = {"Authorization": f"Bearer {token_for(alice)}", "Accept": "text/event-stream"}
    body = {"query": EVENTS, "variables": {"id": doc_id}}
    async with http.stream("POST", "/graphql/stream", json=body, headers=headers) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        while not (line := await next_within(lines)).startswith("data:"):
            pass
        assert json.loads(line.removeprefix("data:"))["data"]["documentEvents"]["kind"] == "JOINED"
    refused = await http.post("/graphql/stream", json=body, headers={"Accept": "text/event-stream", "Authorization": "Bearer x"})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "UNAUTHENTICATED"
    plain = await http.post("/graphql/stream", json=body, headers={"Authorization": f"Bearer {token_for(alice)}"})
    assert plain.status_code == 406 and plain.json()["error"]["code"] == "NOT_ACCEPTABLE"


async def test_subscribers_on_this_instance_get_events_while_redis_is_stopped(
    settings: Settings, token_for: Callable[..., str], alice: User
) -> None:
    """Redis stops under a running instance: its own subscribers still get the task's event, and the
    mutation answers (the limiter and the revocation check fail open, publishing gives up on Redis)."""
    import time

    from tests.realtime.conftest import redis_prefix
    from tests.redis_server import PrivateRedis

    with PrivateRedis() as server:
        shared = settings.model_copy(update={"redis_url": server.url, "redis_prefix": redis_prefix()})
        async with LiveServer(create_app(shared)) as live, \
                ws_session(f"{live.ws_url}/graphql", token_for(alice)) as session:
            events = subscribe(session, TASK_EVENTS)
            pending = asyncio.ensure_future(next_within(events, 20))
            await asyncio.sleep(0.5)  # subscribed (in Redis too) before it stops
            server.stop()
            async with httpx.AsyncClient(base_url=live.url, timeout=20) as http:
                started = time.monotonic()
                created = await post_gql(http, token_for(alice), CREATE_TASK, {"title": "Offline", "labels": []})
                assert time.monotonic() - started < 5
            assert created["data"]["createTask"]["task"]["id"]
            event = await pending
            assert event["taskEvents"]["kind"] == "CREATED" and event["taskEvents"]["task"]["title"] == "Offline"
