"""Collaborative content over HTTP: Yjs updates, index edits, versions, catch-up, snapshots, and the rules."""

from __future__ import annotations

import base64

from pycrdt import Doc, Text

from app.settings import Settings
from db.models import User
from tests.conftest import Gql, codes, global_id, serve
from tests.factories import make_document

CONTENT = "query($id: ID!) { document(id: $id) { content version stateVector yjsState } }"
APPLY = """mutation($id: ID!, $update: Base64!) { applyDocumentUpdate(input: {documentId: $id, update: $update}) {
  version document { content version } userErrors { field code message } } }"""
EDIT = """mutation($id: ID!, $edits: [TextEditInput!]!, $base: Int!) {
  editDocumentText(input: {documentId: $id, edits: $edits, baseVersion: $base}) {
    version update document { content } userErrors { field code message } } }"""
SINCE = "query($id: ID!, $sv: Base64!) { documentUpdatesSince(documentId: $id, stateVector: $sv) { version update } }"
SNAPSHOT = """mutation($id: ID!, $label: String!) { createDocumentSnapshot(input: {documentId: $id, label: $label}) {
  snapshot { id label version content createdBy { name } } userErrors { field code } } }"""
SNAPSHOTS = "query($id: ID!) { document(id: $id) { snapshots { id label version content } } }"
RESTORE = """mutation($id: ID!) { restoreDocumentSnapshot(input: {snapshotId: $id}) {
  version document { content version } userErrors { field code } } }"""
PRESENCE = """mutation($id: ID!, $a: Int!, $h: Int!) { updatePresence(input: {documentId: $id, cursor: {anchor: $a, head: $h}}) {
  expiresAt userErrors { field code } } }"""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def yjs_insert(doc: Doc, index: int, text: str) -> bytes:
    before = doc.get_state()
    doc.get("content", type=Text).insert(index, text)
    return doc.get_update(before)


async def test_yjs_update_and_text_edit_converge(gql: Gql, sessions, alice: User, bob: User) -> None:  # type: ignore[no-untyped-def]
    document = await make_document(sessions, alice, editors=[bob])
    doc_id = global_id("Document", document.id)
    client: Doc = Doc()
    body = await gql(APPLY, {"id": doc_id, "update": b64(yjs_insert(client, 0, "Hello world"))}, as_user=alice)
    result = body["data"]["applyDocumentUpdate"]
    assert result["userErrors"] == [] and result["version"] == 1
    assert result["document"] == {"content": "Hello world", "version": 1}

    # Bob edits by index against version 1 while Alice's second update (version 2) lands first.
    body = await gql(APPLY, {"id": doc_id, "update": b64(yjs_insert(client, 0, ">> "))}, as_user=alice)
    assert body["data"]["applyDocumentUpdate"]["version"] == 2
    edits = [{"index": 6, "delete": 5, "insert": "Tandem"}]
    body = await gql(EDIT, {"id": doc_id, "edits": edits, "base": 1}, as_user=bob)
    edited = body["data"]["editDocumentText"]
    assert edited["userErrors"] == [] and edited["version"] == 3
    assert edited["document"]["content"] == ">> Hello Tandem"

    # The Yjs client applies the broadcast update and agrees.
    client.apply_update(base64.b64decode(edited["update"]))
    assert str(client.get("content", type=Text)) == ">> Hello Tandem"

    state = (await gql(CONTENT, {"id": doc_id}, as_user=bob))["data"]["document"]
    assert state["version"] == 3 and state["content"] == ">> Hello Tandem"
    late: Doc = Doc()
    late.apply_update(base64.b64decode(state["yjsState"]))
    assert str(late.get("content", type=Text)) == ">> Hello Tandem"
    assert base64.b64decode(state["stateVector"]) == late.get_state()


async def test_updates_since_returns_only_what_is_missing(gql: Gql, sessions, alice: User) -> None:  # type: ignore[no-untyped-def]
    document = await make_document(sessions, alice)
    doc_id = global_id("Document", document.id)
    writer: Doc = Doc()
    await gql(APPLY, {"id": doc_id, "update": b64(yjs_insert(writer, 0, "one "))}, as_user=alice)
    offline: Doc = Doc()
    offline.apply_update(writer.get_update())
    await gql(APPLY, {"id": doc_id, "update": b64(yjs_insert(writer, 4, "two "))}, as_user=alice)
    await gql(APPLY, {"id": doc_id, "update": b64(yjs_insert(writer, 8, "three"))}, as_user=alice)

    body = await gql(SINCE, {"id": doc_id, "sv": b64(offline.get_state())}, as_user=alice)
    missing = body["data"]["documentUpdatesSince"]
    assert missing["version"] == 3
    assert len(base64.b64decode(missing["update"])) < len(writer.get_update())
    offline.apply_update(base64.b64decode(missing["update"]))
    assert str(offline.get("content", type=Text)) == "one two three"


async def test_unicode_indices_count_code_points(gql: Gql, sessions, alice: User) -> None:  # type: ignore[no-untyped-def]
    document = await make_document(sessions, alice)
    doc_id = global_id("Document", document.id)
    await gql(EDIT, {"id": doc_id, "edits": [{"index": 0, "insert": "héllo 😀 wörld"}], "base": 0}, as_user=alice)
    body = await gql(EDIT, {"id": doc_id, "edits": [{"index": 8, "delete": 5, "insert": "Welt"}, {"index": 0, "delete": 1, "insert": "H"}],
                            "base": 1}, as_user=alice)
    assert body["data"]["editDocumentText"]["document"]["content"] == "Héllo 😀 Welt"


async def test_snapshots_restore_as_a_new_update(gql: Gql, sessions, alice: User, bob: User) -> None:  # type: ignore[no-untyped-def]
    document = await make_document(sessions, alice, viewers=[bob])
    doc_id = global_id("Document", document.id)
    await gql(EDIT, {"id": doc_id, "edits": [{"index": 0, "insert": "First draft."}], "base": 0}, as_user=alice)
    body = await gql(SNAPSHOT, {"id": doc_id, "label": "draft 1"}, as_user=alice)
    snapshot = body["data"]["createDocumentSnapshot"]["snapshot"]
    assert snapshot["label"] == "draft 1" and snapshot["version"] == 1 and snapshot["content"] == "First draft."
    assert snapshot["createdBy"] == {"name": "Alice"}
    await gql(EDIT, {"id": doc_id, "edits": [{"index": 0, "delete": 12, "insert": "Rewritten entirely."}], "base": 1},
              as_user=alice)

    listed = (await gql(SNAPSHOTS, {"id": doc_id}, as_user=bob))["data"]["document"]["snapshots"]
    assert [s["label"] for s in listed] == ["draft 1"]
    restored = (await gql(RESTORE, {"id": snapshot["id"]}, as_user=alice))["data"]["restoreDocumentSnapshot"]
    assert restored["userErrors"] == []
    assert restored["version"] == 3 and restored["document"] == {"content": "First draft.", "version": 3}

    # A viewer may list snapshots but neither take nor restore one.
    assert codes(await gql(SNAPSHOT, {"id": doc_id, "label": "mine"}, as_user=bob)) == ["FORBIDDEN"]
    assert codes(await gql(RESTORE, {"id": snapshot["id"]}, as_user=bob)) == ["FORBIDDEN"]


async def test_rules_hold_for_every_content_operation(gql: Gql, sessions, alice: User, bob: User, carol: User) -> None:  # type: ignore[no-untyped-def]
    document = await make_document(sessions, alice, viewers=[bob])
    doc_id = global_id("Document", document.id)
    update = b64(yjs_insert(Doc(), 0, "x"))
    edits = [{"index": 0, "insert": "x"}]
    # A viewer reads, but may not write.
    assert codes(await gql(APPLY, {"id": doc_id, "update": update}, as_user=bob)) == ["FORBIDDEN"]
    assert codes(await gql(EDIT, {"id": doc_id, "edits": edits, "base": 0}, as_user=bob)) == ["FORBIDDEN"]
    assert (await gql(CONTENT, {"id": doc_id}, as_user=bob))["data"]["document"]["content"] == ""
    # Someone else sees nothing at all.
    for query, variables in [
        (APPLY, {"id": doc_id, "update": update}), (EDIT, {"id": doc_id, "edits": edits, "base": 0}),
        (CONTENT, {"id": doc_id}), (SINCE, {"id": doc_id, "sv": b64(Doc().get_state())}),
        (SNAPSHOT, {"id": doc_id, "label": "x"}), (PRESENCE, {"id": doc_id, "a": 0, "h": 0}),
    ]:
        assert codes(await gql(query, variables, as_user=carol)) == ["NOT_FOUND"], query
    # Anonymous callers are told to sign in; missing scopes are FORBIDDEN.
    assert codes(await gql(APPLY, {"id": doc_id, "update": update})) == ["UNAUTHENTICATED"]
    assert codes(await gql(APPLY, {"id": doc_id, "update": update}, as_user=alice, scope={"documents:read"})) == ["FORBIDDEN"]


async def test_bad_input_is_a_user_error(gql: Gql, sessions, alice: User) -> None:  # type: ignore[no-untyped-def]
    document = await make_document(sessions, alice)
    doc_id = global_id("Document", document.id)
    await gql(EDIT, {"id": doc_id, "edits": [{"index": 0, "insert": "abc"}], "base": 0}, as_user=alice)

    async def apply_error(update: str) -> dict[str, str]:
        errors = (await gql(APPLY, {"id": doc_id, "update": update}, as_user=alice))["data"]["applyDocumentUpdate"]["userErrors"]
        return {"field": errors[0]["field"], "code": errors[0]["code"]}

    assert await apply_error(b64(b"\x07garbage")) == {"field": "update", "code": "BAD_USER_INPUT"}
    assert await apply_error("") == {"field": "update", "code": "BAD_USER_INPUT"}
    not_base64 = await gql(APPLY, {"id": doc_id, "update": "%%%"}, as_user=alice)
    assert codes(not_base64) == ["BAD_USER_INPUT"]

    async def edit_error(edits: list[dict[str, object]], base: int) -> str | None:
        payload = (await gql(EDIT, {"id": doc_id, "edits": edits, "base": base}, as_user=alice))["data"]["editDocumentText"]
        assert payload["version"] is None and payload["userErrors"][0]["code"] == "BAD_USER_INPUT"
        field: str | None = payload["userErrors"][0]["field"]
        return field

    assert await edit_error([{"index": 4, "insert": "x"}], 1) == "edits.0"
    assert await edit_error([{"index": 0, "insert": "x"}, {"index": 1, "delete": 9}], 1) == "edits.1"
    assert await edit_error([{"index": -1, "insert": "x"}], 1) == "edits.0"
    assert await edit_error([{"index": 0, "insert": "x"}], 7) == "baseVersion"
    assert await edit_error([{"index": 0, "insert": "x"}], -1) == "baseVersion"
    assert await edit_error([], 1) == "edits"
    assert await edit_error([{"index": 0, "insert": "\x00"}], 1) == "edits.insert"
    bad_sv = await gql(SINCE, {"id": doc_id, "sv": b64(b"\xff\xff\xff")}, as_user=alice)
    assert codes(bad_sv) == ["BAD_USER_INPUT"]
    # Nothing above changed the document.
    assert (await gql(CONTENT, {"id": doc_id}, as_user=alice))["data"]["document"]["version"] == 1


async def test_presence_is_rate_limited(settings: Settings, alice: User, sessions, token_for) -> None:  # type: ignore[no-untyped-def]
    document = await make_document(sessions, alice)
    variables = {"id": global_id("Document", document.id), "a": 1, "h": 2}
    async with serve(settings.model_copy(update={"presence_rate_per_second": 1.0})) as client:
        headers = {"Authorization": f"Bearer {token_for(alice)}"}
        first = (await client.post("/graphql", json={"query": PRESENCE, "variables": variables}, headers=headers)).json()
        assert first["data"]["updatePresence"]["userErrors"] == [] and first["data"]["updatePresence"]["expiresAt"]
        bodies = [(await client.post("/graphql", json={"query": PRESENCE, "variables": variables}, headers=headers)).json()
                  for _ in range(3)]
    assert ["RATE_LIMITED"] in [codes(body) for body in bodies]


async def test_log_compaction_keeps_content_and_late_edits(settings: Settings, alice: User, sessions, token_for) -> None:  # type: ignore[no-untyped-def]
    document = await make_document(sessions, alice)
    doc_id = global_id("Document", document.id)
    small = settings.model_copy(update={"realtime_compact_every": 5, "realtime_keep_updates": 3})
    headers = {"Authorization": f"Bearer {token_for(alice)}"}
    async with serve(small) as client:
        for version in range(20):
            body = (await client.post("/graphql", headers=headers, json={"query": EDIT, "variables": {
                "id": doc_id, "edits": [{"index": version, "insert": chr(ord("a") + version)}], "base": version}})).json()
            assert body["data"]["editDocumentText"]["version"] == version + 1
        # The log was compacted, yet a client 2 versions behind can still edit by index, and a client
        # far behind is told to reload rather than having its edit land in the wrong place.
        recent = (await client.post("/graphql", headers=headers, json={"query": EDIT, "variables": {
            "id": doc_id, "edits": [{"index": 0, "insert": "^"}], "base": 18}})).json()["data"]["editDocumentText"]
        assert recent["userErrors"] == [] and recent["document"]["content"] == "^abcdefghijklmnopqrst"
        stale = (await client.post("/graphql", headers=headers, json={"query": EDIT, "variables": {
            "id": doc_id, "edits": [{"index": 0, "insert": "!"}], "base": 2}})).json()["data"]["editDocumentText"]
        assert stale["userErrors"][0]["field"] == "baseVersion"
    async with serve(settings) as client:  # a fresh process reads the compacted state back
        body = (await client.post("/graphql", headers=headers, json={"query": CONTENT, "variables": {"id": doc_id}})).json()
    assert body["data"]["document"]["content"] == "^abcdefghijklmnopqrst" and body["data"]["document"]["version"] == 21
