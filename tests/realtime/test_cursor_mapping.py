"""Cursors survive concurrent edits: a position given for the version the client saw is mapped through
the edits made since (a Yjs sticky index), so it stays on its character while others type before it."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from db.models import User
from tests.conftest import global_id
from tests.factories import make_document
from tests.realtime.conftest import next_within, post_gql, subscribe

EVENTS = "subscription($id: ID!) { documentEvents(documentId: $id) { kind version cursor { anchor head } } }"
EDIT = """mutation($id: ID!, $index: Int!, $text: String!, $base: Int!) {
  editDocumentText(input: {documentId: $id, edits: [{index: $index, insert: $text}], baseVersion: $base}) {
    version } }"""
CURSOR = """mutation($id: ID!, $a: Int!, $h: Int!, $base: Int) {
  updatePresence(input: {documentId: $id, cursor: {anchor: $a, head: $h}, baseVersion: $base}) {
    expiresAt userErrors { code field } } }"""


async def _cursor(events: object) -> tuple[int, int, int]:
    while True:
        event = (await next_within(events))["documentEvents"]
        if event["kind"] == "CURSOR":
            return event["cursor"]["anchor"], event["cursor"]["head"], event["version"]


async def test_a_cursor_given_for_an_older_version_follows_its_characters(
    ws: Callable[..., object], http: httpx.AsyncClient, token_for: Callable[..., str], sessions,  # type: ignore[no-untyped-def]
    alice: User, bob: User,
) -> None:
    document = await make_document(sessions, alice, editors=[bob])
    doc_id = global_id("Document", document.id)
    alice_token, bob_token = token_for(alice), token_for(bob)
    await post_gql(http, alice_token, EDIT, {"id": doc_id, "index": 0, "text": "hello world", "base": 0})  # v1
    async with ws(bob) as session:  # type: ignore[attr-defined]
        events = subscribe(session, EVENTS, {"id": doc_id})
        assert (await next_within(events))["documentEvents"]["kind"] == "JOINED"
        # Bob types before "world" (v2) while Alice, who still sees v1, selects "world" (6..11).
        await post_gql(http, bob_token, EDIT, {"id": doc_id, "index": 0, "text": "é€ ", "base": 1})
        answer = await post_gql(http, alice_token, CURSOR, {"id": doc_id, "a": 6, "h": 11, "base": 1})
        assert answer["data"]["updatePresence"]["userErrors"] == []
        assert await _cursor(events) == (9, 14, 2)  # still "world", in code points of v2's text
        # Given for the latest version, positions go out as they are.
        await post_gql(http, alice_token, CURSOR, {"id": doc_id, "a": 1, "h": 1, "base": 2})
        assert await _cursor(events) == (1, 1, 2)
        await post_gql(http, alice_token, CURSOR, {"id": doc_id, "a": 2, "h": 3, "base": None})
        assert await _cursor(events) == (2, 3, 2)


@pytest.mark.parametrize("base", [-1, 3])
async def test_a_version_that_does_not_exist_is_refused(
    http: httpx.AsyncClient, token_for: Callable[..., str], sessions, alice: User, base: int,  # type: ignore[no-untyped-def]
) -> None:
    document = await make_document(sessions, alice)
    doc_id = global_id("Document", document.id)
    answer = await post_gql(http, token_for(alice), CURSOR, {"id": doc_id, "a": 0, "h": 0, "base": base})
    assert answer["data"]["updatePresence"]["userErrors"] == [{"code": "BAD_USER_INPUT", "field": "baseVersion"}]
