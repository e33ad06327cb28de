"""createTask / updateTask (partial: omitted unchanged, null clears) / deleteTask, and their userErrors."""

from __future__ import annotations

from typing import Any

from db.engine import Sessions
from db.models import User
from tests.conftest import Gql, codes, global_id
from tests.factories import make_document, make_task

FIELDS = "id title description status priority dueAt labels assignee { name } document { title }"
CREATE = f"mutation($input: CreateTaskInput!) {{ createTask(input: $input) {{ task {{ {FIELDS} }} userErrors {{ field message code }} }} }}"
UPDATE = f"mutation($input: UpdateTaskInput!) {{ updateTask(input: $input) {{ task {{ {FIELDS} }} userErrors {{ field message code }} }} }}"
DELETE = "mutation($id: ID!) { deleteTask(input: {id: $id}) { deletedTaskId userErrors { code } } }"
COUNT = "{ tasks { totalCount } }"


async def _create(gql: Gql, user: User, **fields: Any) -> dict[str, Any]:
    body = await gql(CREATE, {"input": {"title": "Write it", **fields}}, as_user=user)
    return body["data"]["createTask"]


async def test_create_task_with_every_field(gql: Gql, sessions: Sessions, alice: User, bob: User) -> None:
    document = await make_document(sessions, alice, "Plan")
    payload = await _create(
        gql, alice, description="the long text", status="IN_PROGRESS", priority="URGENT",
        dueAt="2030-01-31T17:00:00+00:00", labels=["a", "b", "a"],
        assigneeId=global_id("User", bob.id), documentId=global_id("Document", document.id),
    )
    assert payload["userErrors"] == []
    task = payload["task"]
    assert task["title"] == "Write it"
    assert (task["status"], task["priority"], task["labels"]) == ("IN_PROGRESS", "URGENT", ["a", "b"])
    assert task["dueAt"].startswith("2030-01-31T17:00:00")
    assert task["assignee"] == {"name": "Bob"}
    assert task["document"] == {"title": "Plan"}


async def test_create_task_defaults(gql: Gql, alice: User) -> None:
    task = (await _create(gql, alice))["task"]
    assert (task["status"], task["priority"], task["labels"], task["assignee"], task["dueAt"]) == (
        "TODO", "MEDIUM", [], None, None)


async def test_blank_title_is_a_user_error_and_creates_nothing(gql: Gql, alice: User) -> None:
    payload = await _create(gql, alice, title="   ")
    assert payload["task"] is None
    assert payload["userErrors"] == [{"field": "title", "message": "`title` cannot be blank.", "code": "BAD_USER_INPUT"}]
    assert (await gql(COUNT, as_user=alice))["data"]["tasks"]["totalCount"] == 0


async def test_unknown_assignee_is_a_user_error(gql: Gql, alice: User) -> None:
    payload = await _create(gql, alice, assigneeId=global_id("User", 999_999))
    assert payload["userErrors"][0]["field"] == "assigneeId"


async def test_malformed_id_is_a_user_error(gql: Gql, alice: User) -> None:
    payload = await _create(gql, alice, assigneeId="not-an-id")
    assert payload["userErrors"][0]["field"] == "assigneeId"
    payload = await _create(gql, alice, assigneeId=global_id("Task", 1))
    assert payload["userErrors"][0]["message"] == "`assigneeId` must be the ID of a User."


async def test_naive_due_date_is_a_user_error(gql: Gql, alice: User) -> None:
    payload = await _create(gql, alice, dueAt="2030-01-31T17:00:00")
    assert payload["userErrors"][0]["field"] == "dueAt"


async def test_too_many_labels_is_a_user_error(gql: Gql, alice: User) -> None:
    payload = await _create(gql, alice, labels=[f"l{i}" for i in range(21)])
    assert payload["userErrors"][0]["field"] == "labels"


async def test_cannot_put_a_task_into_a_hidden_or_view_only_document(
    gql: Gql, sessions: Sessions, alice: User, bob: User
) -> None:
    hidden = await make_document(sessions, bob, "Bob's")
    view_only = await make_document(sessions, bob, "Shared", viewers=[alice])
    for document in (hidden, view_only):
        payload = await _create(gql, alice, documentId=global_id("Document", document.id))
        assert payload["task"] is None
        assert payload["userErrors"][0]["field"] == "documentId"
    assert (await gql(COUNT, as_user=alice))["data"]["tasks"]["totalCount"] == 0


async def test_partial_update_leaves_omitted_fields_alone(gql: Gql, sessions: Sessions, alice: User, bob: User) -> None:
    task = await make_task(sessions, alice, "Old", description="keep me", assignee=bob, labels=["x"], priority=3)
    body = await gql(UPDATE, {"input": {"id": global_id("Task", task.id), "title": "New"}}, as_user=alice)
    updated = body["data"]["updateTask"]["task"]
    assert (updated["title"], updated["description"], updated["priority"], updated["labels"]) == (
        "New", "keep me", "HIGH", ["x"])
    assert updated["assignee"] == {"name": "Bob"}


async def test_explicit_null_clears(gql: Gql, sessions: Sessions, alice: User, bob: User) -> None:
    document = await make_document(sessions, alice)
    task = await make_task(sessions, alice, assignee=bob, document=document, labels=["x"], description="d")
    changes = {"assigneeId": None, "documentId": None, "dueAt": None, "labels": None, "description": None}
    body = await gql(UPDATE, {"input": {"id": global_id("Task", task.id), **changes}}, as_user=alice)
    updated = body["data"]["updateTask"]["task"]
    assert (updated["assignee"], updated["document"], updated["dueAt"], updated["labels"], updated["description"]) == (
        None, None, None, [], "")


async def test_null_for_a_required_field_is_a_user_error(gql: Gql, sessions: Sessions, alice: User) -> None:
    task = await make_task(sessions, alice, "Keep")
    for field in ("title", "status", "priority"):
        body = await gql(UPDATE, {"input": {"id": global_id("Task", task.id), field: None}}, as_user=alice)
        assert body["data"]["updateTask"]["userErrors"][0]["field"] == field
    check = await gql("query($id: ID!) { task(id: $id) { title status } }", {"id": global_id("Task", task.id)},
                      as_user=alice)
    assert check["data"]["task"] == {"title": "Keep", "status": "TODO"}


async def test_invalid_update_changes_nothing(gql: Gql, sessions: Sessions, alice: User) -> None:
    task = await make_task(sessions, alice, "Keep")
    body = await gql(UPDATE, {"input": {"id": global_id("Task", task.id), "title": "New", "labels": [""]}},
                     as_user=alice)
    assert body["data"]["updateTask"]["userErrors"][0]["field"] == "labels"
    check = await gql("query($id: ID!) { task(id: $id) { title } }", {"id": global_id("Task", task.id)}, as_user=alice)
    assert check["data"]["task"]["title"] == "Keep"


async def test_delete_task(gql: Gql, sessions: Sessions, alice: User) -> None:
    task = await make_task(sessions, alice)
    body = await gql(DELETE, {"id": global_id("Task", task.id)}, as_user=alice)
    assert body["data"]["deleteTask"] == {"deletedTaskId": global_id("Task", task.id), "userErrors": []}
    again = await gql(DELETE, {"id": global_id("Task", task.id)}, as_user=alice)
    assert codes(again) == ["NOT_FOUND"]
