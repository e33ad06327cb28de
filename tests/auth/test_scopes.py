"""Scopes: a token can do what its scopes allow and nothing more; each refusal has its exact code."""

from __future__ import annotations

from typing import Any

import pytest

from db.engine import Sessions
from db.models import User
from tests.conftest import Gql, codes, global_id, task_count
from tests.factories import make_document, make_task

TASKS = "{ tasks { edges { node { id title } } } }"
TASK = "query($id: ID!) { task(id: $id) { id title } }"
TASKS_WITH_DOCUMENT = "{ tasks { edges { node { id document { id } } } } }"
CREATE_TASK = (
    'mutation { createTask(input: {title: "Sneaky"}) { task { id } userErrors { field message code } } }'
)
DOCUMENTS = "{ documents { edges { node { id title } } } }"
DOCUMENT = "query($id: ID!) { document(id: $id) { id title } }"
VIEWER_DOCUMENTS = "{ viewer { id documents { edges { node { id } } } } }"
NODE = "query($id: ID!) { node(id: $id) { id } }"
NODES = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"
UPDATE_VIEWER = 'mutation { updateViewer(input: {name: "Mallory"}) { user { name } userErrors { code } } }'
VIEWER_NAME = "{ viewer { name } }"

TASKS_ONLY = {"tasks:read"}
NO_DOCUMENTS = {"tasks:read", "tasks:write", "profile", "documents:write"}


def _error_paths(body: dict[str, Any]) -> list[list[Any]]:
    return [error.get("path") for error in body.get("errors", [])]


# --- tasks:read alone -------------------------------------------------------------------------------


async def test_tasks_read_token_reads_tasks(gql: Gql, sessions: Sessions, alice: User) -> None:
    task = await make_task(sessions, alice, "Mine")
    body = await gql(TASKS, as_user=alice, scope=TASKS_ONLY)
    assert "errors" not in body
    assert body["data"]["tasks"]["edges"] == [{"node": {"id": global_id("Task", task.id), "title": "Mine"}}]

    body = await gql(TASK, {"id": global_id("Task", task.id)}, as_user=alice, scope=TASKS_ONLY)
    assert body == {"data": {"task": {"id": global_id("Task", task.id), "title": "Mine"}}}


async def test_tasks_read_token_cannot_create_task(gql: Gql, sessions: Sessions, alice: User) -> None:
    body = await gql(CREATE_TASK, as_user=alice, scope=TASKS_ONLY)
    assert codes(body) == ["FORBIDDEN"]
    assert _error_paths(body) == [["createTask"]]
    assert body["data"] is None
    assert await task_count(sessions) == 0


async def test_tasks_write_token_creates_task(gql: Gql, sessions: Sessions, alice: User) -> None:
    # The positive twin of the test above: the refusal is about the scope, not the mutation.
    body = await gql(CREATE_TASK, as_user=alice, scope={"tasks:write"})
    assert "errors" not in body
    assert body["data"]["createTask"]["userErrors"] == []
    assert await task_count(sessions) == 1


async def test_token_without_any_scope_reads_no_tasks(gql: Gql, sessions: Sessions, alice: User) -> None:
    task = await make_task(sessions, alice)
    assert codes(await gql(TASKS, as_user=alice, scope=set())) == ["FORBIDDEN"]
    assert codes(await gql(TASK, {"id": global_id("Task", task.id)}, as_user=alice, scope=set())) == ["FORBIDDEN"]
    assert codes(await gql(NODE, {"id": global_id("Task", task.id)}, as_user=alice, scope=set())) == ["FORBIDDEN"]


# --- without documents:read -------------------------------------------------------------------------


async def test_without_documents_read_documents_are_forbidden(gql: Gql, sessions: Sessions, alice: User) -> None:
    document = await make_document(sessions, alice, "Plans")
    document_id = global_id("Document", document.id)

    body = await gql(DOCUMENTS, as_user=alice, scope=NO_DOCUMENTS)
    assert codes(body) == ["FORBIDDEN"] and body["data"] is None

    body = await gql(DOCUMENT, {"id": document_id}, as_user=alice, scope=NO_DOCUMENTS)
    assert codes(body) == ["FORBIDDEN"] and body["data"] == {"document": None}

    body = await gql(NODE, {"id": document_id}, as_user=alice, scope=NO_DOCUMENTS)
    assert codes(body) == ["FORBIDDEN"] and body["data"] == {"node": None}

    body = await gql(NODES, {"ids": [document_id]}, as_user=alice, scope=NO_DOCUMENTS)
    assert codes(body) == ["FORBIDDEN"] and body["data"] == {"nodes": [None]}

    body = await gql(VIEWER_DOCUMENTS, as_user=alice, scope=NO_DOCUMENTS)
    assert codes(body) == ["FORBIDDEN"]
    assert "Plans" not in str(body)


async def test_without_documents_read_tasks_are_still_readable(gql: Gql, sessions: Sessions, alice: User) -> None:
    document = await make_document(sessions, alice, "Plans")
    task = await make_task(sessions, alice, "In the plan", document=document)

    body = await gql(TASKS, as_user=alice, scope=NO_DOCUMENTS)
    assert "errors" not in body
    assert body["data"]["tasks"]["edges"] == [{"node": {"id": global_id("Task", task.id), "title": "In the plan"}}]

    body = await gql(NODE, {"id": global_id("Task", task.id)}, as_user=alice, scope=NO_DOCUMENTS)
    assert body == {"data": {"node": {"id": global_id("Task", task.id)}}}

    # Reaching the document through the task is refused too, without losing the task itself.
    body = await gql(TASKS_WITH_DOCUMENT, as_user=alice, scope=NO_DOCUMENTS)
    assert codes(body) == ["FORBIDDEN"]
    assert _error_paths(body) == [["tasks", "edges", 0, "node", "document"]]
    assert body["data"]["tasks"]["edges"] == [{"node": {"id": global_id("Task", task.id), "document": None}}]


async def test_documents_read_token_reads_documents(gql: Gql, sessions: Sessions, alice: User) -> None:
    document = await make_document(sessions, alice, "Plans")
    body = await gql(DOCUMENT, {"id": global_id("Document", document.id)}, as_user=alice, scope={"documents:read"})
    assert body == {"data": {"document": {"id": global_id("Document", document.id), "title": "Plans"}}}


# --- profile ----------------------------------------------------------------------------------------


async def test_update_viewer_needs_profile(gql: Gql, alice: User) -> None:
    body = await gql(UPDATE_VIEWER, as_user=alice, scope=TASKS_ONLY | {"tasks:write", "documents:write"})
    assert codes(body) == ["FORBIDDEN"]
    assert body["data"] is None
    assert (await gql(VIEWER_NAME, as_user=alice))["data"]["viewer"]["name"] == "Alice"


async def test_update_viewer_with_profile(gql: Gql, alice: User) -> None:
    body = await gql(UPDATE_VIEWER, as_user=alice, scope={"profile"})
    assert body == {"data": {"updateViewer": {"user": {"name": "Mallory"}, "userErrors": []}}}


# --- anonymous ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "kind"),
    [(TASKS, None), (TASK, "Task"), (CREATE_TASK, None), (NODE, "Task"), (NODE, "Document"), (NODE, "User"),
     (DOCUMENTS, None), (DOCUMENT, "Document"), (UPDATE_VIEWER, None)],
    ids=["tasks", "task", "createTask", "node-task", "node-document", "node-user", "documents", "document",
         "updateViewer"],
)
async def test_anonymous_caller_must_sign_in(
    document: str, kind: str | None, gql: Gql, sessions: Sessions, alice: User
) -> None:
    owned = {"Task": (await make_task(sessions, alice)).id, "Document": (await make_document(sessions, alice)).id,
             "User": alice.id}
    variables = {"id": global_id(kind, owned[kind])} if kind else {}
    body = await gql(document, variables)
    assert codes(body) == ["UNAUTHENTICATED"]
    assert "errors" in body and not any((body.get("data") or {}).values())
    assert await task_count(sessions) == 1  # createTask created nothing
