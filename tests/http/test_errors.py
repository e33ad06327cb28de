"""Errors as DESIGN.md promises them: a code on every error, bad input as BAD_USER_INPUT or
`userErrors`, missing and foreign objects as NOT_FOUND, and bugs masked for the client but logged
with the request id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.settings import Settings
from db.engine import Sessions
from db.models import User
from tests.conftest import Gql, codes, global_id, serve, task_count
from tests.factories import make_task

CREATE_TASK = """
mutation($input: CreateTaskInput!) {
  createTask(input: $input) { task { id } userErrors { field message code } }
}
"""
TASK = "query($id: ID!) { task(id: $id) { id } }"
TASK_LABELS = "query($id: ID!) { task(id: $id) { id labels } }"
NODE = "query($id: ID!) { node(id: $id) { id } }"
TYPO = "{ viewer { nmae } }"




# --- bad input ----------------------------------------------------------------------------------


async def test_invalid_enum_value_is_bad_user_input(gql: Gql, sessions: Sessions, alice: User) -> None:
    body = await gql(CREATE_TASK, {"input": {"title": "Ship it", "status": "NOPE"}}, as_user=alice)
    assert codes(body) == ["BAD_USER_INPUT"]
    assert await task_count(sessions) == 0


@pytest.mark.parametrize(("field", "task_input"), [
    pytest.param("title", {"title": "x" * 501}, id="title"),
    pytest.param("description", {"title": "Fine", "description": "x" * 10_001}, id="description"),
    pytest.param("title", {"title": "   "}, id="blank title"),
])
async def test_bad_text_is_a_user_error(
    gql: Gql, sessions: Sessions, alice: User, field: str, task_input: dict[str, Any]
) -> None:
    body = await gql(CREATE_TASK, {"input": task_input}, as_user=alice)
    payload = body["data"]["createTask"]
    assert payload["task"] is None
    [error] = payload["userErrors"]
    assert (error["field"], error["code"]) == (field, "BAD_USER_INPUT")
    assert await task_count(sessions) == 0


# --- IDs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", [
    pytest.param("garbage", id="garbage"),
    pytest.param("", id="empty"),
    pytest.param(global_id("User", 1), id="another type's ID"),
    pytest.param(global_id("Task", 0), id="key zero"),
])
async def test_malformed_id_is_bad_user_input(gql: Gql, alice: User, bad_id: str) -> None:
    body = await gql(TASK, {"id": bad_id}, as_user=alice)
    assert codes(body) == ["BAD_USER_INPUT"]


async def test_missing_task_is_not_found(gql: Gql, alice: User) -> None:
    body = await gql(TASK, {"id": global_id("Task", 999_999)}, as_user=alice)
    assert codes(body) == ["NOT_FOUND"]
    assert body["data"] == {"task": None}


@pytest.mark.parametrize("pk", [2**31, 2**63 - 1])
async def test_id_beyond_the_key_column_is_not_found(gql: Gql, alice: User, pk: int) -> None:
    # Keys are 32-bit INTEGER columns: a bigger one must not reach PostgreSQL as a parameter.
    body = await gql(TASK, {"id": global_id("Task", pk)}, as_user=alice)
    assert codes(body) == ["NOT_FOUND"]


async def test_others_task_reads_exactly_like_a_missing_one(
    gql: Gql, sessions: Sessions, alice: User, bob: User
) -> None:
    task = await make_task(sessions, bob)
    others = await gql(NODE, {"id": global_id("Task", task.id)}, as_user=alice)
    missing = await gql(NODE, {"id": global_id("Task", task.id + 1000)}, as_user=alice)
    assert codes(others) == codes(missing) == ["NOT_FOUND"]
    assert others["errors"][0]["message"] == missing["errors"][0]["message"]


async def test_node_of_unknown_type_is_not_found(gql: Gql, alice: User) -> None:
    body = await gql(NODE, {"id": global_id("Banana", 1)}, as_user=alice)
    assert codes(body) == ["NOT_FOUND"]


# --- bugs are masked ----------------------------------------------------------------------------


async def _rename_table(sessions: Sessions, old: str, new: str) -> None:
    async with sessions.begin() as session:
        await session.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


async def test_database_failure_is_masked_and_logged(
    client: httpx.AsyncClient, sessions: Sessions, token_for: Callable[..., str], alice: User,
    caplog: pytest.LogCaptureFixture,
) -> None:
    task = await make_task(sessions, alice, labels=["urgent"])
    await _rename_table(sessions, "task_labels", "task_labels_gone")  # a real failure, not a mock
    try:
        response = await client.post(
            "/graphql",
            json={"query": TASK_LABELS, "variables": {"id": global_id("Task", task.id)}},
            headers={"Authorization": f"Bearer {token_for(alice)}"},
        )
    finally:
        await _rename_table(sessions, "task_labels_gone", "task_labels")  # the PostgreSQL database is shared

    [error] = response.json()["errors"]
    request_id = response.headers["x-request-id"]
    assert error["message"] == "Internal server error."
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
    for leak in ("SELECT", "task_labels", "Traceback", "sqlalchemy", "sqlite", "asyncpg"):
        assert leak not in response.text
    [logged] = [record for record in caplog.records if record.name == "tandem.errors"]
    assert logged.levelno == logging.ERROR
    assert logged.__dict__["request_id"] == request_id  # passed as `extra`
    assert logged.exc_info is not None
    assert "task_labels" in logging.Formatter().formatException(logged.exc_info)


# --- production hides suggestions ---------------------------------------------------------------


@pytest.mark.parametrize(("env", "suggests"), [("development", True), ("production", False)])
async def test_field_suggestions_only_in_development(settings: Settings, env: str, suggests: bool) -> None:
    async with serve(settings.model_copy(update={"env": env})) as http:
        response = await http.post("/graphql", json={"query": TYPO})
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"].startswith("Cannot query field 'nmae' on type 'User'.")
    assert ("Did you mean 'name'?" in error["message"]) is suggests
