"""tasks(filter, orderBy) and cursor pagination."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from db.engine import Sessions
from db.models import User
from tests.conftest import Gql, global_id
from tests.factories import make_task

TASKS = """query($f: TaskFilter, $o: TaskOrder, $first: Int, $after: String, $last: Int, $before: String) {
  tasks(filter: $f, orderBy: $o, first: $first, after: $after, last: $last, before: $before) {
    totalCount
    edges { cursor node { title } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""


def titles(body: dict) -> list[str]:  # type: ignore[type-arg]
    return [edge["node"]["title"] for edge in body["data"]["tasks"]["edges"]]


async def test_filters(gql: Gql, sessions: Sessions, alice: User, bob: User) -> None:
    now = datetime.now(UTC)
    await make_task(sessions, alice, "Alpha", status="DONE", labels=["red"], due_at=now + timedelta(days=1))
    await make_task(sessions, alice, "Beta 100%", assignee=bob, due_at=now + timedelta(days=10))
    await make_task(sessions, alice, "Gamma", description="mentions beta", labels=["red", "blue"])
    cases = {
        "status": ({"status": ["DONE"]}, ["Alpha"]),
        "single status coerces to a list": ({"status": "TODO"}, ["Beta 100%", "Gamma"]),
        "assignee": ({"assignee": global_id("User", bob.id)}, ["Beta 100%"]),
        "label": ({"label": "red"}, ["Alpha", "Gamma"]),
        "dueBefore": ({"dueBefore": (now + timedelta(days=5)).isoformat()}, ["Alpha"]),
        "dueAfter": ({"dueAfter": (now + timedelta(days=5)).isoformat()}, ["Beta 100%"]),
        "search title or description, any case": ({"search": "BETA"}, ["Beta 100%", "Gamma"]),
        "search treats % literally": ({"search": "100%"}, ["Beta 100%"]),
        "search treats _ literally": ({"search": "_"}, []),
        "combined": ({"label": "red", "status": ["TODO"]}, ["Gamma"]),
    }
    for name, (task_filter, expected) in cases.items():
        body = await gql(TASKS, {"f": task_filter, "o": {"field": "TITLE", "direction": "ASC"}}, as_user=alice)
        assert titles(body) == expected, name
        assert body["data"]["tasks"]["totalCount"] == len(expected), name


async def test_order_by(gql: Gql, sessions: Sessions, alice: User) -> None:
    now = datetime.now(UTC)
    await make_task(sessions, alice, "b", priority=1, due_at=now + timedelta(days=2))
    await make_task(sessions, alice, "a", priority=4)
    await make_task(sessions, alice, "c", priority=2, due_at=now + timedelta(days=1))
    async def order(field: str, direction: str) -> list[str]:
        return titles(await gql(TASKS, {"o": {"field": field, "direction": direction}}, as_user=alice))
    assert await order("TITLE", "ASC") == ["a", "b", "c"]
    assert await order("PRIORITY", "DESC") == ["a", "c", "b"]
    assert await order("DUE_AT", "ASC") == ["c", "b", "a"]  # tasks without a due date come last
    assert await order("CREATED_AT", "DESC") == ["c", "a", "b"]


async def test_forward_and_backward_pagination(gql: Gql, sessions: Sessions, alice: User) -> None:
    for i in range(5):
        await make_task(sessions, alice, f"t{i}")
    o = {"field": "TITLE", "direction": "ASC"}
    first = await gql(TASKS, {"o": o, "first": 2}, as_user=alice)
    assert titles(first) == ["t0", "t1"]
    info = first["data"]["tasks"]["pageInfo"]
    assert (info["hasNextPage"], info["hasPreviousPage"]) == (True, False)
    second = await gql(TASKS, {"o": o, "first": 2, "after": info["endCursor"]}, as_user=alice)
    assert titles(second) == ["t2", "t3"]
    third = await gql(TASKS, {"o": o, "first": 2, "after": second["data"]["tasks"]["pageInfo"]["endCursor"]},
                      as_user=alice)
    assert titles(third) == ["t4"]
    assert third["data"]["tasks"]["pageInfo"]["hasNextPage"] is False
    last = await gql(TASKS, {"o": o, "last": 2}, as_user=alice)
    assert titles(last) == ["t3", "t4"]
    assert last["data"]["tasks"]["pageInfo"]["hasPreviousPage"] is True
    before = await gql(TASKS, {"o": o, "last": 2, "before": last["data"]["tasks"]["pageInfo"]["startCursor"]},
                       as_user=alice)
    assert titles(before) == ["t1", "t2"]
    assert before["data"]["tasks"]["pageInfo"]["hasNextPage"] is True
    assert before["data"]["tasks"]["totalCount"] == 5


async def test_viewer_tasks_are_owned_or_assigned(gql: Gql, sessions: Sessions, alice: User, bob: User) -> None:
    await make_task(sessions, alice, "mine")
    await make_task(sessions, bob, "given to me", assignee=alice)
    await make_task(sessions, bob, "bob's own")
    body = await gql("{ viewer { tasks(orderBy: {field: TITLE, direction: ASC}) { totalCount nodes { title } } } }",
                     as_user=alice)
    assert body["data"]["viewer"]["tasks"] == {"totalCount": 2, "nodes": [{"title": "given to me"}, {"title": "mine"}]}
