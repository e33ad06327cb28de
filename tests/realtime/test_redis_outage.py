"""Document events across two instances through a Redis that goes down and comes back: the instance
that made the changes delivers them to its own subscribers throughout; a subscriber on the other
instance, which heard nothing meanwhile, gets every missed version in order, once, afterwards (the
update log fills the gap)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from db.models import User
from tests.conftest import global_id
from tests.factories import make_document
from tests.live_server import LiveServer
from tests.realtime.conftest import next_within, subscribe, ws_session
from tests.realtime.conftest import redis_prefix as new_prefix
from tests.redis_server import PrivateRedis

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

EVENTS = "subscription($id: ID!) { documentEvents(documentId: $id) { kind version } }"
EDIT = """mutation($id: ID!, $text: String!, $base: Int!) {
  editDocumentText(input: {documentId: $id, edits: [{index: 0, insert: $text}], baseVersion: $base}) { version } }"""


async def _updates(events: object, count: int) -> list[int]:
    versions: list[int] = []
    while len(versions) < count:
        event = (await next_within(events, 15))["documentEvents"]
        if event["kind"] == "UPDATE":
            versions.append(event["version"])
    return versions


async def test_the_other_instance_resumes_without_gap_or_duplicate(
    settings: Settings, sessions, alice: User, bob: User, token_for: Callable[..., str],  # type: ignore[no-untyped-def]
) -> None:
    document = await make_document(sessions, alice, editors=[bob])
    doc_id = global_id("Document", document.id)
    with PrivateRedis() as redis:
        shared = settings.model_copy(update={
            "redis_url": redis.url, "redis_prefix": new_prefix(), "redis_timeout_seconds": 0.5,
            "realtime_recheck_seconds": 1.0, "single_instance": False})
        headers = {"Authorization": f"Bearer {token_for(bob)}"}
        async with LiveServer(create_app(shared)) as other, LiveServer(create_app(shared)) as here, \
                httpx.AsyncClient(base_url=here.url, timeout=30) as writer:
            # Two people: presence spans instances, so one person's second subscription is no news.
            async with ws_session(f"{other.ws_url}/graphql", token_for(alice)) as far, \
                    ws_session(f"{here.ws_url}/graphql", token_for(bob)) as near:
                far_events = subscribe(far, EVENTS, {"id": doc_id})
                near_events = subscribe(near, EVENTS, {"id": doc_id})
                assert (await next_within(far_events))["documentEvents"]["kind"] == "JOINED"
                assert (await next_within(near_events))["documentEvents"]["kind"] == "JOINED"

                async def edit(base: int) -> None:
                    answer = await writer.post("/graphql", headers=headers, json={
                        "query": EDIT, "variables": {"id": doc_id, "text": "x", "base": base}})
                    assert answer.json()["data"]["editDocumentText"]["version"] == base + 1, answer.text

                await edit(0)
                assert await _updates(far_events, 1) == [1] and await _updates(near_events, 1) == [1]
                redis.stop()
                for base in (1, 2, 3):
                    await edit(base)
                assert await _updates(near_events, 3) == [2, 3, 4]  # in process, at once
                redis.start()
                await edit(4)
                assert await _updates(near_events, 1) == [5]
                assert await _updates(far_events, 4) == [2, 3, 4, 5]  # the log filled the gap, once each
