"""N+1 never returns: the dashboard query costs the same number of SQL statements for 5 or 50 tasks."""

from __future__ import annotations

import pytest

from db.engine import Sessions
from db.models import User
from tests.conftest import Gql, StatementCounter
from tests.factories import make_document, make_task, make_user

DASHBOARD = """query($first: Int!) { viewer { tasks(first: $first) { edges { node {
  title assignee { name } document { title collaborators { user { name } role } }
} } } } }"""

# 1 tasks page, 1 assignees + collaborator users (one users batch per level: 2), 1 documents,
# 1 collaborators. The viewer's own row is loaded while checking the token (1).
EXPECTED_STATEMENTS = 6


async def _dashboard_data(sessions: Sessions, viewer: User) -> None:
    teammates = [await make_user(sessions, f"Teammate {i}") for i in range(10)]
    # Readers are never assignees, so collaborators always need a second users batch.
    readers = [await make_user(sessions, f"Reader {i}") for i in range(8)]
    documents = [
        await make_document(sessions, viewer, f"Doc {i}", editors=teammates[i : i + 2], viewers=[readers[i]])
        for i in range(8)
    ]
    for i in range(60):
        await make_task(sessions, viewer, f"Task {i}", assignee=teammates[i % 10], document=documents[i % 8])


@pytest.mark.parametrize("first", [5, 50])
async def test_dashboard_statement_count_is_constant(
    gql: Gql, sessions: Sessions, alice: User, sql_statements: StatementCounter, first: int
) -> None:
    await _dashboard_data(sessions, alice)
    sql_statements.statements.clear()
    body = await gql(DASHBOARD, {"first": first}, as_user=alice)
    edges = body["data"]["viewer"]["tasks"]["edges"]
    assert len(edges) == first
    assert all(edge["node"]["document"]["collaborators"] for edge in edges)
    assert sql_statements.count == EXPECTED_STATEMENTS, "\n\n".join(sql_statements.statements)


async def test_the_viewer_is_read_once_per_request(
    gql: Gql, alice: User, sql_statements: StatementCounter
) -> None:
    """The row read while checking the token (`Loaders.load_viewer`) is the one `viewer` resolves to."""
    sql_statements.statements.clear()
    body = await gql("{ viewer { id name email } me: viewer { name } }", as_user=alice)
    assert body["data"]["viewer"]["name"] == body["data"]["me"]["name"] == alice.name
    assert sql_statements.count == 1, "\n\n".join(sql_statements.statements)


async def test_nested_user_connections_do_not_grow_with_the_page(
    gql: Gql, sessions: Sessions, alice: User, sql_statements: StatementCounter
) -> None:
    """Every collaborator's own tasks and documents: a fixed number of statements, not one per user.

    Users already cached (the viewer) resolve a tick earlier and form their own small batch, so the
    number is a constant bound, not one statement per level.
    """
    await _dashboard_data(sessions, alice)
    query = """query($first: Int!) { documents(first: $first) { nodes { collaborators { user {
      tasks(first: 3) { totalCount nodes { title } } documents(first: 2) { totalCount nodes { title } }
    } } } } }"""
    counts = []
    for first in (2, 8):
        sql_statements.statements.clear()
        body = await gql(query, {"first": first}, as_user=alice)
        assert "errors" not in body
        assert len(body["data"]["documents"]["nodes"]) == first
        counts.append(sql_statements.count)
    # Which batch a cached user lands in depends on event-loop ticks, so the count varies by one or two;
    # what must hold is a bound that does not grow with the page size.
    assert max(counts) <= 12, counts


RELATIONS = """query($first: Int!) { viewer { tasks(first: $first) { nodes {
  title labels owner { name } assignee { name } document { title }
} } } }"""


@pytest.mark.parametrize("first", [5, 50])
async def test_prefetched_relations_cost_one_statement_each(
    gql: Gql, sessions: Sessions, alice: User, sql_statements: StatementCounter, first: int
) -> None:
    """The task list loads owners and assignees (one users batch), documents and labels up front."""
    await _dashboard_data(sessions, alice)
    sql_statements.statements.clear()
    body = await gql(RELATIONS, {"first": first}, as_user=alice)
    nodes = body["data"]["viewer"]["tasks"]["nodes"]
    assert len(nodes) == first and all(node["assignee"] and node["document"] for node in nodes)
    # the viewer, the page, users, documents, labels
    assert sql_statements.count == 5, "\n\n".join(sql_statements.statements)


async def test_a_list_without_relations_prefetches_nothing(
    gql: Gql, sessions: Sessions, alice: User, sql_statements: StatementCounter
) -> None:
    await _dashboard_data(sessions, alice)
    sql_statements.statements.clear()
    body = await gql("{ viewer { tasks(first: 50) { nodes { title } } } }", as_user=alice)
    assert len(body["data"]["viewer"]["tasks"]["nodes"]) == 50
    assert sql_statements.count == 2, "\n\n".join(sql_statements.statements)  # the viewer, the page


async def test_prefetch_in_nested_lists_batches_across_parents(
    gql: Gql, sessions: Sessions, alice: User, sql_statements: StatementCounter
) -> None:
    """Each collaborator's task list prefetches its assignees: one batch for all of them, not one per list."""
    await _dashboard_data(sessions, alice)
    query = """query($first: Int!) { documents(first: $first) { nodes { collaborators { user {
      tasks(first: 3) { nodes { title assignee { name } document { title } } }
    } } } } }"""
    counts = []
    for first in (2, 8):
        sql_statements.statements.clear()
        body = await gql(query, {"first": first}, as_user=alice)
        assert "errors" not in body
        counts.append(sql_statements.count)
    assert counts[0] == counts[1], counts


async def test_a_page_is_the_same_alone_or_batched(gql: Gql, sessions: Sessions, alice: User) -> None:
    """One parent's page is a plain LIMIT query, several parents' a windowed one: same rows either way."""
    await _dashboard_data(sessions, alice)
    page = "tasks(first: 3, after: $after, orderBy: {field: TITLE, direction: ASC}) { nodes { title } }"
    batched = await gql(
        f"query($after: String) {{ documents(first: 8) {{ nodes {{ collaborators {{ user {{ id {page} }} }} }} }} }}",
        {"after": "bzow"}, as_user=alice,  # after offset 0
    )
    pages = {c["user"]["id"]: c["user"]["tasks"] for d in batched["data"]["documents"]["nodes"] for c in d["collaborators"]}
    assert len(pages) > 2
    for user_id, expected in pages.items():
        alone = await gql(f"query($id: ID!, $after: String) {{ user(id: $id) {{ {page} }} }}",
                          {"id": user_id, "after": "bzow"}, as_user=alice)
        assert alone["data"]["user"]["tasks"] == expected
