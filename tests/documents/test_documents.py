"""Documents: collaborators see them; editors edit; only owners share, unshare or delete."""

from __future__ import annotations

from db.engine import Sessions
from db.models import User
from tests.conftest import Gql, codes, global_id
from tests.factories import make_document, make_task

DOCUMENT = "query($id: ID!) { document(id: $id) { title viewerRole owner { name } collaborators { role user { name } } } }"
DOCUMENTS = "{ documents { totalCount nodes { title } } }"
CREATE = "mutation($t: String!) { createDocument(input: {title: $t}) { document { id title viewerRole } userErrors { field } } }"
UPDATE = "mutation($id: ID!, $t: String) { updateDocument(input: {id: $id, title: $t}) { document { title } userErrors { field } } }"
DELETE = "mutation($id: ID!) { deleteDocument(input: {id: $id}) { deletedDocumentId } }"
SHARE = """mutation($d: ID!, $u: ID!, $r: CollaboratorRole!) {
  shareDocument(input: {documentId: $d, userId: $u, role: $r}) { document { collaborators { role user { name } } } userErrors { field code } }
}"""
UNSHARE = "mutation($d: ID!, $u: ID!) { unshareDocument(input: {documentId: $d, userId: $u}) { userErrors { field } } }"


def ids(document_id: int, user_id: int, role: str | None = None) -> dict[str, str]:
    values = {"d": global_id("Document", document_id), "u": global_id("User", user_id)}
    return values | ({"r": role} if role else {})


async def test_creator_owns_the_new_document(gql: Gql, alice: User) -> None:
    body = await gql(CREATE, {"t": "Plan"}, as_user=alice)
    assert body["data"]["createDocument"]["document"]["viewerRole"] == "OWNER"
    assert (await gql(DOCUMENTS, as_user=alice))["data"]["documents"] == {"totalCount": 1, "nodes": [{"title": "Plan"}]}


async def test_blank_title_is_a_user_error(gql: Gql, alice: User) -> None:
    body = await gql(CREATE, {"t": " "}, as_user=alice)
    assert body["data"]["createDocument"] == {"document": None, "userErrors": [{"field": "title"}]}


async def test_outsider_cannot_read_find_edit_share_or_delete(
    gql: Gql, sessions: Sessions, alice: User, bob: User
) -> None:
    document = await make_document(sessions, alice, "Secret")
    doc_id = global_id("Document", document.id)
    assert codes(await gql(DOCUMENT, {"id": doc_id}, as_user=bob)) == ["NOT_FOUND"]
    node = await gql("query($id: ID!) { node(id: $id) { id } }", {"id": doc_id}, as_user=bob)
    assert codes(node) == ["NOT_FOUND"]
    assert (await gql(DOCUMENTS, as_user=bob))["data"]["documents"]["totalCount"] == 0
    assert codes(await gql(UPDATE, {"id": doc_id, "t": "x"}, as_user=bob)) == ["NOT_FOUND"]
    assert codes(await gql(DELETE, {"id": doc_id}, as_user=bob)) == ["NOT_FOUND"]
    assert codes(await gql(SHARE, ids(document.id, bob.id, "EDITOR"), as_user=bob)) == ["NOT_FOUND"]
    assert (await gql(DOCUMENT, {"id": doc_id}, as_user=alice))["data"]["document"]["title"] == "Secret"


async def test_viewer_reads_but_cannot_edit_share_or_delete(
    gql: Gql, sessions: Sessions, alice: User, bob: User, carol: User
) -> None:
    document = await make_document(sessions, alice, "Shared", viewers=[bob])
    doc_id = global_id("Document", document.id)
    body = await gql(DOCUMENT, {"id": doc_id}, as_user=bob)
    assert body["data"]["document"]["viewerRole"] == "VIEWER"
    assert codes(await gql(UPDATE, {"id": doc_id, "t": "x"}, as_user=bob)) == ["FORBIDDEN"]
    assert codes(await gql(SHARE, ids(document.id, carol.id, "VIEWER"), as_user=bob)) == ["FORBIDDEN"]
    assert codes(await gql(DELETE, {"id": doc_id}, as_user=bob)) == ["FORBIDDEN"]


async def test_editor_edits_but_cannot_share_or_delete(
    gql: Gql, sessions: Sessions, alice: User, bob: User, carol: User
) -> None:
    document = await make_document(sessions, alice, "Shared", editors=[bob])
    doc_id = global_id("Document", document.id)
    body = await gql(UPDATE, {"id": doc_id, "t": "Renamed"}, as_user=bob)
    assert body["data"]["updateDocument"]["document"] == {"title": "Renamed"}
    assert codes(await gql(SHARE, ids(document.id, carol.id, "VIEWER"), as_user=bob)) == ["FORBIDDEN"]
    assert codes(await gql(UNSHARE, ids(document.id, alice.id), as_user=bob)) == ["FORBIDDEN"]
    assert codes(await gql(DELETE, {"id": doc_id}, as_user=bob)) == ["FORBIDDEN"]


async def test_owner_shares_changes_role_and_unshares(
    gql: Gql, sessions: Sessions, alice: User, bob: User
) -> None:
    document = await make_document(sessions, alice, "Plan")
    body = await gql(SHARE, ids(document.id, bob.id, "VIEWER"), as_user=alice)
    assert body["data"]["shareDocument"]["document"]["collaborators"] == [
        {"role": "OWNER", "user": {"name": "Alice"}}, {"role": "VIEWER", "user": {"name": "Bob"}}]
    body = await gql(SHARE, ids(document.id, bob.id, "EDITOR"), as_user=alice)
    assert body["data"]["shareDocument"]["document"]["collaborators"][1] == {"role": "EDITOR", "user": {"name": "Bob"}}
    assert (await gql(UNSHARE, ids(document.id, bob.id), as_user=alice))["data"]["unshareDocument"]["userErrors"] == []
    assert codes(await gql(DOCUMENT, {"id": global_id("Document", document.id)}, as_user=bob)) == ["NOT_FOUND"]


async def test_sharing_mistakes_are_user_errors(gql: Gql, sessions: Sessions, alice: User, bob: User) -> None:
    document = await make_document(sessions, alice, "Plan")
    cases = [
        (ids(document.id, bob.id, "OWNER"), "role"),
        (ids(document.id, alice.id, "EDITOR"), "userId"),
        (ids(document.id, 999_999, "EDITOR"), "userId"),
    ]
    for variables, field in cases:
        body = await gql(SHARE, variables, as_user=alice)
        assert body["data"]["shareDocument"]["userErrors"] == [{"field": field, "code": "BAD_USER_INPUT"}]
    body = await gql(UNSHARE, ids(document.id, alice.id), as_user=alice)
    assert body["data"]["unshareDocument"]["userErrors"] == [{"field": "userId"}]


async def test_collaborator_may_leave(gql: Gql, sessions: Sessions, alice: User, bob: User) -> None:
    document = await make_document(sessions, alice, "Plan", viewers=[bob])
    assert (await gql(UNSHARE, ids(document.id, bob.id), as_user=bob))["data"]["unshareDocument"]["userErrors"] == []
    assert (await gql(DOCUMENTS, as_user=bob))["data"]["documents"]["totalCount"] == 0


async def test_owner_deletes_and_tasks_survive_detached(gql: Gql, sessions: Sessions, alice: User) -> None:
    document = await make_document(sessions, alice, "Plan")
    task = await make_task(sessions, alice, "inside", document=document)
    body = await gql(DELETE, {"id": global_id("Document", document.id)}, as_user=alice)
    assert body["data"]["deleteDocument"]["deletedDocumentId"] == global_id("Document", document.id)
    check = await gql("query($id: ID!) { task(id: $id) { title document { title } } }",
                      {"id": global_id("Task", task.id)}, as_user=alice)
    assert check["data"]["task"] == {"title": "inside", "document": None}


async def test_document_tasks_connection(gql: Gql, sessions: Sessions, alice: User, bob: User) -> None:
    document = await make_document(sessions, alice, "Plan", viewers=[bob])
    for title in ("one", "two", "three"):
        await make_task(sessions, alice, title, document=document)
    await make_task(sessions, alice, "elsewhere")
    query = "query($id: ID!) { document(id: $id) { tasks(first: 2, orderBy: {field: TITLE, direction: ASC}) { totalCount nodes { title } } } }"
    body = await gql(query, {"id": global_id("Document", document.id)}, as_user=bob)
    assert body["data"]["document"]["tasks"] == {"totalCount": 3, "nodes": [{"title": "one"}, {"title": "three"}]}
