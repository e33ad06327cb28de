"""Presence across instances: a user with the document open on two instances is announced JOINED once
and LEFT only when the last of their subscriptions anywhere ends; `document { present }` answers who is
there now, from any instance. On one Redis and on a Redis Cluster."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from db.models import User
from tests.conftest import REDIS_URL, global_id
from tests.factories import make_document
from tests.live_server import LiveServer
from tests.realtime.conftest import next_within, post_gql, redis_prefix, subscribe, ws_session

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

EVENTS = "subscription($id: ID!) { documentEvents(documentId: $id) { kind user { name } } }"
CURSOR = """mutation($id: ID!) { updatePresence(input: {documentId: $id, cursor: {anchor: 1, head: 1}}) {
  expiresAt } }"""
PRESENT = "query($id: ID!) { node(id: $id) { ... on Document { present { name } } } }"


@pytest.fixture(params=["single", "cluster"])
def redis_url(request: pytest.FixtureRequest) -> str:
    return REDIS_URL if request.param == "single" else request.getfixturevalue("redis_cluster").url


async def _present(url: str, token: str, doc_id: str) -> list[str]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        body = await post_gql(http, token, PRESENT, {"id": doc_id})
    return [user["name"] for user in body["data"]["node"]["present"]]


async def _event(events: Any) -> tuple[str, str | None]:
    event = (await next_within(events))["documentEvents"]
    return event["kind"], (event["user"] or {}).get("name")


async def test_a_user_on_two_instances_leaves_once_both_are_closed(
    settings: Settings, redis_url: str, sessions, alice: User, bob: User, token_for: Callable[..., str],  # type: ignore[no-untyped-def]
) -> None:
    document = await make_document(sessions, alice, viewers=[bob])
    doc_id = global_id("Document", document.id)
    shared = settings.model_copy(update={"redis_url": redis_url, "redis_prefix": redis_prefix(),
                                         "single_instance": False})
    alice_token, bob_token = token_for(alice), token_for(bob)
    async with LiveServer(create_app(shared)) as one, LiveServer(create_app(shared)) as two:
        async with ws_session(f"{one.ws_url}/graphql", bob_token) as watcher:
            events = subscribe(watcher, EVENTS, {"id": doc_id})
            assert await _event(events) == ("JOINED", "Bob")
            async with ws_session(f"{one.ws_url}/graphql", alice_token) as here:
                mine = subscribe(here, EVENTS, {"id": doc_id})
                assert await _event(mine) == ("JOINED", "Alice")
                assert await _event(events) == ("JOINED", "Alice")
                async with ws_session(f"{two.ws_url}/graphql", alice_token) as there:
                    theirs = subscribe(there, EVENTS, {"id": doc_id})
                    # No JOINED goes out for her again: Bob's cursors until one shows her stream is live.
                    first = asyncio.ensure_future(_event(theirs))
                    sent = 0
                    async with httpx.AsyncClient(base_url=two.url, timeout=30) as http:
                        while not first.done():
                            await post_gql(http, bob_token, CURSOR, {"id": doc_id})
                            sent += 1
                            await asyncio.wait([first], timeout=0.2)
                    assert first.result() == ("CURSOR", "Bob")
                    assert [await _event(events) for _ in range(sent)] == [("CURSOR", "Bob")] * sent
                    assert [await _event(mine) for _ in range(sent)] == [("CURSOR", "Bob")] * sent
                    assert sorted(await _present(two.url, bob_token, doc_id)) == ["Alice", "Bob"]
                # Alice closed the second instance's socket: still present, so no LEFT. The next event
                # Bob gets is her cursor.
                async with httpx.AsyncClient(base_url=one.url, timeout=30) as http:
                    await post_gql(http, alice_token, CURSOR, {"id": doc_id})
                assert await _event(events) == ("CURSOR", "Alice")
                assert sorted(await _present(one.url, bob_token, doc_id)) == ["Alice", "Bob"]
            assert await _event(events) == ("LEFT", "Alice")  # her last subscription anywhere
            assert await _present(two.url, bob_token, doc_id) == ["Bob"]


async def test_without_redis_presence_is_this_instance_s(
    settings: Settings, sessions, alice: User, token_for: Callable[..., str],  # type: ignore[no-untyped-def]
) -> None:
    document = await make_document(sessions, alice)
    doc_id = global_id("Document", document.id)
    token = token_for(alice)
    async with LiveServer(create_app(settings)) as server:
        assert await _present(server.url, token, doc_id) == []
        async with ws_session(f"{server.ws_url}/graphql", token) as session:
            events = subscribe(session, EVENTS, {"id": doc_id})
            assert await _event(events) == ("JOINED", "Alice")
            assert await _present(server.url, token, doc_id) == ["Alice"]
        assert await _present(server.url, token, doc_id) == []


async def test_who_is_present_is_not_told_to_someone_who_cannot_see_the_document(
    settings: Settings, sessions, alice: User, carol: User, token_for: Callable[..., str],  # type: ignore[no-untyped-def]
) -> None:
    document = await make_document(sessions, alice)
    doc_id = global_id("Document", document.id)
    async with LiveServer(create_app(settings)) as server:
        async with ws_session(f"{server.ws_url}/graphql", token_for(alice)) as session:
            events = subscribe(session, EVENTS, {"id": doc_id})
            assert await _event(events) == ("JOINED", "Alice")
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                body = await post_gql(http, token_for(carol), PRESENT, {"id": doc_id})
    assert body["data"]["node"] is None  # not shared with Carol: no document, so no one in it
