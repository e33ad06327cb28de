"""The batched executor answers exactly what graphql-core answers, and takes the queries it should.

Every operation here runs twice against the same database: on the app (batched execution on, the
default) and on a second app with `batched_execution=False` (graphql-core's executor only). The
bodies must be equal, errors included (request ids aside). `/metrics` tells which executor ran.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.settings import Settings
from db.engine import Sessions
from db.models import User
from tests.conftest import GRAPHQL_RESPONSE, global_id, serve
from tests.factories import make_document, make_task, make_user

DASHBOARD = """query($first: Int!) { viewer { tasks(first: $first) { edges { node {
  id title status priority dueAt labels viewerCanUpdate
  owner { id name email } assignee { id name } document { id title viewerRole collaborators { role user { name } } }
} cursor } pageInfo { hasNextPage endCursor } totalCount } } }"""

FRAGMENTS = """
fragment Who on User { id name }
fragment Row on Task { title ...on Task { status } assignee { ...Who } }
query($skipDoc: Boolean!, $withOwner: Boolean!) {
  __typename
  viewer { __typename me: name tasks(first: 4, orderBy: {field: TITLE, direction: ASC}) {
    nodes { ...Row __typename t2: title document @skip(if: $skipDoc) { title } owner @include(if: $withOwner) { ...Who } }
  } }
}"""

# Each (document, variables, user); None user: anonymous. Comments say which executor should run it.
CASES: list[tuple[str, str, dict[str, Any], str | None]] = [
    ("dashboard", DASHBOARD, {"first": 20}, "batched"),
    ("fragments, aliases, skip and include", FRAGMENTS, {"skipDoc": True, "withOwner": True}, "batched"),
    ("the same, other variables", FRAGMENTS, {"skipDoc": False, "withOwner": False}, "batched"),
    ("filter and nested connections",
     """{ tasks(first: 5, filter: {label: "red", status: [TODO, DONE]}) { totalCount nodes { title labels
        document { title tasks(first: 2) { totalCount nodes { title } } owner { name documents(first: 1) { nodes { title } } } }
     } } }""", {}, "batched"),
    ("backward pagination", "{ tasks(last: 3) { edges { cursor node { title } } pageInfo { hasPreviousPage startCursor } } }",
     {}, "batched"),
    ("anonymous viewer is null", "{ viewer { name } __typename }", {}, "batched"),
    ("node is an interface", "query($id: ID!) { node(id: $id) { id ... on Task { title } } }", {"id": "TASK"}, "fallback"),
    ("nodes with a missing id", "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ["TASK", "MISSING"]}, "fallback"),
    ("a missing task", "query($id: ID!) { task(id: $id) { title } }", {"id": "MISSING"}, "fallback"),
    ("a bad cursor", '{ tasks(after: "nonsense") { nodes { title } } }', {}, "fallback"),
    ("introspection", "{ __schema { queryType { name } } __type(name: \"Task\") { fields { name } } }", {}, "fallback"),
    ("a mutation", 'mutation { updateViewer(input: {name: "Alice"}) { user { name } userErrors { code } } }', {},
     "graphql-core"),
]


@pytest.fixture
async def graphql_core(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(settings.model_copy(update={"batched_execution": False})) as client:
        yield client


async def _data(sessions: Sessions, alice: User) -> dict[str, str]:
    bob = await make_user(sessions, "Bob")
    carol = await make_user(sessions, "Carol")
    shared = await make_document(sessions, bob, "Shared", editors=[alice], viewers=[carol])
    private = await make_document(sessions, bob, "Private")  # alice cannot see it
    due = datetime(2026, 12, 24, 18, 30, 15, 123456, tzinfo=UTC)
    first = await make_task(sessions, alice, "Alpha", assignee=bob, document=shared, labels=["red", "blue"], due_at=due)
    await make_task(sessions, alice, "Bravo", status="DONE", document=private, labels=["red"])
    await make_task(sessions, bob, "Charlie", assignee=alice, priority=4)
    await make_task(sessions, bob, "Delta", document=shared, status="IN_PROGRESS")
    await make_task(sessions, carol, "Echo")  # invisible to alice
    return {"TASK": global_id("Task", first.id), "MISSING": global_id("Task", 999_999)}


def _executions(metrics_text: str) -> dict[str, float]:
    found = re.findall(r'tandem_graphql_executions_total\{executor="([^"]+)"\} ([0-9.]+)', metrics_text)
    return {name: float(value) for name, value in found}


def _without_request_ids(body: dict[str, Any]) -> dict[str, Any]:
    for error in body.get("errors", []):
        error.get("extensions", {}).pop("requestId", None)
    return body


async def _post(client: httpx.AsyncClient, query: str, variables: dict[str, Any], token: str | None) -> dict[str, Any]:
    headers = {"Accept": GRAPHQL_RESPONSE}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = await client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
    return {"status": response.status_code, **_without_request_ids(response.json())}


@pytest.mark.parametrize(("name", "query", "variables", "executor"), CASES, ids=[case[0] for case in CASES])
async def test_same_answer_as_graphql_core(
    client: httpx.AsyncClient, graphql_core: httpx.AsyncClient, sessions: Sessions, alice: User,
    token_for: Callable[..., str], name: str, query: str, variables: dict[str, Any], executor: str,
) -> None:
    ids = await _data(sessions, alice)
    variables = {key: ids.get(value, value) if isinstance(value, str) else
                 [ids.get(item, item) for item in value] if isinstance(value, list) else value
                 for key, value in variables.items()}
    token = None if name.startswith("anonymous") else token_for(alice)
    before = _executions((await client.get("/metrics")).text)
    batched = await _post(client, query, variables, token)
    after = _executions((await client.get("/metrics")).text)
    expected = await _post(graphql_core, query, variables, token)
    assert batched == expected
    assert after.get(executor, 0) == before.get(executor, 0) + 1, (before, after)
    if executor == "batched":
        assert "errors" not in batched


async def test_nested_errors_are_graphql_cores(
    client: httpx.AsyncClient, graphql_core: httpx.AsyncClient, sessions: Sessions, alice: User,
    token_for: Callable[..., str],
) -> None:
    """A field refused on every list item (no `documents:read`): graphql-core's errors, one per item."""
    await _data(sessions, alice)
    token = token_for(alice, {"tasks:read"})
    query = "{ viewer { tasks(first: 10) { nodes { title document { title } } } } }"
    batched = await _post(client, query, {}, token)
    assert batched == await _post(graphql_core, query, {}, token)
    assert {error["extensions"]["code"] for error in batched["errors"]} == {"FORBIDDEN"}


async def test_a_failing_prefetch_fails_only_the_items_fields(
    client: httpx.AsyncClient, graphql_core: httpx.AsyncClient, sessions: Sessions, alice: User,
    token_for: Callable[..., str],
) -> None:
    """The documents batch fails (its table is gone): each item's `document` is null with its own error,
    the list itself stands, as without prefetching."""
    await _data(sessions, alice)
    token = token_for(alice)
    query = "{ viewer { tasks(first: 10) { nodes { title document { title } } } } }"
    async with sessions.begin() as session:
        await session.execute(text("ALTER TABLE documents RENAME TO documents_gone"))
    try:
        batched = await _post(client, query, {}, token)
        expected = await _post(graphql_core, query, {}, token)
    finally:
        async with sessions.begin() as session:
            await session.execute(text("ALTER TABLE documents_gone RENAME TO documents"))
    assert batched == expected
    nodes = batched["data"]["viewer"]["tasks"]["nodes"]
    assert [node["title"] for node in nodes] == ["Charlie", "Bravo", "Alpha"]
    assert all(node["document"] is None for node in nodes)
    # Alpha's and Bravo's documents failed to load; Charlie has none.
    assert [(error["path"][-2], error["extensions"]["code"]) for error in batched["errors"]] == [
        (1, "INTERNAL_SERVER_ERROR"), (2, "INTERNAL_SERVER_ERROR")]
