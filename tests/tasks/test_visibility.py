"""Bob must not read, change, delete or even discover Alice's private tasks, by any route."""

from __future__ import annotations

from db.engine import Sessions
from db.models import User
from tests.conftest import Gql, codes, global_id
from tests.factories import make_document, make_task

TASK = "query($id: ID!) { task(id: $id) { id title } }"
NODE = "query($id: ID!) { node(id: $id) { id ... on Task { title } } }"
NODES = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"
TASKS = "query($f: TaskFilter) { tasks(filter: $f) { totalCount edges { node { id title } } } }"
USER_TASKS = "query($id: ID!) { user(id: $id) { tasks { totalCount edges { node { id } } } } }"
UPDATE = "mutation($id: ID!) { updateTask(input: {id: $id, title: \"pwned\"}) { task { id } userErrors { code } } }"
DELETE = "mutation($id: ID!) { deleteTask(input: {id: $id}) { deletedTaskId } }"


async def test_others_task_is_not_found(gql: Gql, sessions: Sessions, alice: User, bob: User) -> None:
    task = await make_task(sessions, alice, "secret")
    body = await gql(TASK, {"id": global_id("Task", task.id)}, as_user=bob)
    assert codes(body) == ["NOT_FOUND"]
    assert body["data"] == {"task": None}


async def test_others_task_reads_exactly_like_a_missing_one(gql: Gql, sessions: Sessions, alice: User, bob: User) -> None:
    task = await make_task(sessions, alice, "secret")
    hidden = await gql(TASK, {"id": global_id("Task", task.id)}, as_user=bob)
    missing = await gql(TASK, {"id": global_id("Task", task.id + 1000)}, as_user=bob)
    for body in (hidden, missing):
        del body["errors"][0]["extensions"]["requestId"]
    assert hidden == missing


async def test_others_task_is_not_found_by_node(gql: Gql, sessions: Sessions, alice: User, bob: User) -> None:
    task = await make_task(sessions, alice, "secret")
    body = await gql(NODE, {"id": global_id("Task", task.id)}, as_user=bob)
    assert codes(body) == ["NOT_FOUND"]
    assert body["data"] == {"node": None}


async def test_nodes_nulls_only_the_hidden_entry(gql: Gql, sessions: Sessions, alice: User, bob: User) -> None:
    mine = await make_task(sessions, bob, "mine")
    theirs = await make_task(sessions, alice, "secret")
    body = await gql(NODES, {"ids": [global_id("Task", mine.id), global_id("Task", theirs.id)]}, as_user=bob)
    assert body["data"]["nodes"] == [{"id": global_id("Task", mine.id)}, None]
    assert codes(body) == ["NOT_FOUND"]
    assert body["errors"][0]["path"] == ["nodes", 1]


async def test_others_tasks_do_not_appear_in_lists_or_filters(
    gql: Gql, sessions: Sessions, alice: User, bob: User
) -> None:
    await make_task(sessions, alice, "secret plan", labels=["x"], assignee=alice)
    await make_task(sessions, bob, "my plan")
    for task_filter in ({}, {"search": "secret"}, {"label": "x"}, {"assignee": global_id("User", alice.id)}):
        body = await gql(TASKS, {"f": task_filter}, as_user=bob)
        titles = [edge["node"]["title"] for edge in body["data"]["tasks"]["edges"]]
        assert "secret plan" not in titles, task_filter
    body = await gql(TASKS, {"f": {"search": "secret"}}, as_user=bob)
    assert body["data"]["tasks"]["totalCount"] == 0


async def test_others_tasks_do_not_appear_through_their_user(
    gql: Gql, sessions: Sessions, alice: User, bob: User
) -> None:
    await make_task(sessions, alice, "secret")
    body = await gql(USER_TASKS, {"id": global_id("User", alice.id)}, as_user=bob)
    assert body["data"]["user"]["tasks"] == {"totalCount": 0, "edges": []}


async def test_cannot_update_others_task(gql: Gql, sessions: Sessions, alice: User, bob: User) -> None:
    task = await make_task(sessions, alice, "secret")
    body = await gql(UPDATE, {"id": global_id("Task", task.id)}, as_user=bob)
    assert codes(body) == ["NOT_FOUND"]
    check = await gql(TASK, {"id": global_id("Task", task.id)}, as_user=alice)
    assert check["data"]["task"]["title"] == "secret"


async def test_cannot_delete_others_task(gql: Gql, sessions: Sessions, alice: User, bob: User) -> None:
    task = await make_task(sessions, alice, "secret")
    body = await gql(DELETE, {"id": global_id("Task", task.id)}, as_user=bob)
    assert codes(body) == ["NOT_FOUND"]
    check = await gql(TASK, {"id": global_id("Task", task.id)}, as_user=alice)
    assert check["data"]["task"]["title"] == "secret"


async def test_assignee_sees_and_edits_but_cannot_delete(gql: Gql, sessions: Sessions, alice: User, bob: User) -> None:
    task = await make_task(sessions, alice, "shared", assignee=bob)
    assert (await gql(TASK, {"id": global_id("Task", task.id)}, as_user=bob))["data"]["task"]["title"] == "shared"
    updated = await gql(UPDATE, {"id": global_id("Task", task.id)}, as_user=bob)
    assert updated["data"]["updateTask"]["task"] == {"id": global_id("Task", task.id)}
    deleted = await gql(DELETE, {"id": global_id("Task", task.id)}, as_user=bob)
    assert codes(deleted) == ["FORBIDDEN"]


async def test_document_collaborators_see_its_tasks(
    gql: Gql, sessions: Sessions, alice: User, bob: User, carol: User
) -> None:
    document = await make_document(sessions, alice, viewers=[bob])
    task = await make_task(sessions, alice, "in doc", document=document)
    assert (await gql(TASK, {"id": global_id("Task", task.id)}, as_user=bob))["data"]["task"]["title"] == "in doc"
    assert codes(await gql(TASK, {"id": global_id("Task", task.id)}, as_user=carol)) == ["NOT_FOUND"]


async def test_document_viewer_cannot_edit_its_tasks(gql: Gql, sessions: Sessions, alice: User, bob: User) -> None:
    document = await make_document(sessions, alice, viewers=[bob])
    task = await make_task(sessions, alice, "in doc", document=document)
    body = await gql(UPDATE, {"id": global_id("Task", task.id)}, as_user=bob)
    assert codes(body) == ["FORBIDDEN"]


async def test_document_editor_can_edit_its_tasks(gql: Gql, sessions: Sessions, alice: User, bob: User) -> None:
    document = await make_document(sessions, alice, editors=[bob])
    task = await make_task(sessions, alice, "in doc", document=document)
    body = await gql(UPDATE, {"id": global_id("Task", task.id)}, as_user=bob)
    assert body["data"]["updateTask"]["task"] == {"id": global_id("Task", task.id)}


async def test_removed_collaborator_loses_access_at_once(gql: Gql, sessions: Sessions, alice: User, bob: User) -> None:
    document = await make_document(sessions, alice, editors=[bob])
    task = await make_task(sessions, alice, "in doc", document=document)
    unshare = ("mutation($d: ID!, $u: ID!) { unshareDocument(input: {documentId: $d, userId: $u}) "
               "{ userErrors { code } } }")
    body = await gql(unshare, {"d": global_id("Document", document.id), "u": global_id("User", bob.id)}, as_user=alice)
    assert body["data"]["unshareDocument"]["userErrors"] == []
    assert codes(await gql(TASK, {"id": global_id("Task", task.id)}, as_user=bob)) == ["NOT_FOUND"]


async def test_task_document_is_null_when_the_document_is_hidden(
    gql: Gql, sessions: Sessions, alice: User, bob: User
) -> None:
    document = await make_document(sessions, alice, "private")
    task = await make_task(sessions, alice, "assigned", document=document, assignee=bob)
    body = await gql("query($id: ID!) { task(id: $id) { document { title } } }", {"id": global_id("Task", task.id)},
                     as_user=bob)
    assert body == {"data": {"task": {"document": None}}}
