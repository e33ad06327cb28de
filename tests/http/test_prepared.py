"""Known documents run the short way (app/prepared.py) and answer exactly what `schema.execute` answers.

Each request goes, twice, to two apps on the same database: the default one, where the second
request finds its document cached and valid and takes the short way, and one with
`prepared_operations=False`, where every request takes Strawberry's extension pipeline. The second
answers must be equal: status, body (request ids aside) and the rate-limit header fields. The only
value allowed to differ is how many points the bucket holds, which refills with the passing time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from app.settings import RateTier, RateTiers, Settings
from db.engine import Sessions
from db.models import User
from tests.conftest import GRAPHQL_RESPONSE, global_id, serve
from tests.factories import make_document, make_task, make_user

TASKS = "query($first: Int!) { viewer { tasks(first: $first) { nodes { id title assignee { name } document { title } } } } }"
TWO = "query Small { __typename } query Deep { viewer { tasks { nodes { document { owner { tasks { nodes { document { owner { tasks { nodes { title } } } } } } } } } } } }"
TOO_DEAR = "{ tasks(first: 100) { nodes { document { tasks(first: 100) { nodes { title } } } } } }"

# (name, method, query, variables, operation name, signed in, takes the short way on its second request)
CASES: list[tuple[str, str, str, dict[str, Any], str | None, bool, bool]] = [
    ("typename, anonymous", "POST", "{ __typename }", {}, None, False, True),
    ("tasks with variables", "POST", TASKS, {"first": 3}, None, True, True),
    ("the same, by GET", "GET", TASKS, {"first": 2}, None, True, True),
    ("a missing task", "POST", "query($id: ID!) { task(id: $id) { title } }", {"id": "MISSING"}, None, True, True),
    ("variables of the wrong type", "POST", TASKS, {"first": "many"}, None, True, True),
    ("a query above the cost limit", "POST", TOO_DEAR, {}, None, True, True),
    ("a named operation", "POST", TWO, {}, "Small", False, True),
    ("its too-deep sibling", "POST", TWO, {}, "Deep", True, False),
    ("no operation name for two", "POST", TWO, {}, None, False, False),
    ("introspection", "POST", '{ __type(name: "Task") { name fields { name } } }', {}, None, False, True),
    ("a mutation", "POST", 'mutation { updateViewer(input: {name: "Alice"}) { user { name } userErrors { code } } }',
     {}, None, True, True),
]


@pytest.fixture
async def pipeline(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(settings.model_copy(update={"prepared_operations": False})) as client:
        yield client


async def _data(sessions: Sessions, alice: User) -> dict[str, str]:
    bob = await make_user(sessions, "Bob")
    shared = await make_document(sessions, bob, "Shared", editors=[alice])
    await make_task(sessions, alice, "Alpha", assignee=bob, document=shared)
    await make_task(sessions, alice, "Bravo")
    await make_task(sessions, bob, "Charlie", assignee=alice, document=shared)
    return {"MISSING": global_id("Task", 999_999)}


async def _send(
    client: httpx.AsyncClient, method: str, query: str, variables: dict[str, Any], operation_name: str | None,
    token: str | None,
) -> dict[str, Any]:
    headers = {"Accept": GRAPHQL_RESPONSE}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    payload: dict[str, Any] = {"query": query, "variables": variables}
    if operation_name:
        payload["operationName"] = operation_name
    if method == "GET":
        response = await client.get("/graphql", params={**payload, "variables": json.dumps(variables)}, headers=headers)
    else:
        response = await client.post("/graphql", json=payload, headers=headers)
    return _comparable(response)


def _comparable(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    for error in body.get("errors", []):
        error.get("extensions", {}).pop("requestId", None)
    throttle = body.get("extensions", {}).get("cost", {}).get("throttleStatus", {})
    throttle.pop("currentlyAvailable", None)  # refills with time
    headers = {name: response.headers.get(name) for name in ("ratelimit-policy", "retry-after", "allow", "etag")}
    headers["ratelimit"] = (response.headers.get("ratelimit") or "").split(";r=")[0]
    return {"status": response.status_code, "headers": headers, "body": body}


@pytest.mark.parametrize(("name", "method", "query", "variables", "operation_name", "signed_in", "short"), CASES,
                         ids=[case[0] for case in CASES])
async def test_same_answer_as_the_pipeline(
    app: Starlette, client: httpx.AsyncClient, pipeline: httpx.AsyncClient, sessions: Sessions, alice: User,
    token_for: Callable[..., str], name: str, method: str, query: str, variables: dict[str, Any],
    operation_name: str | None, signed_in: bool, short: bool,
) -> None:
    ids = await _data(sessions, alice)
    variables = {key: ids.get(value, value) if isinstance(value, str) else value for key, value in variables.items()}
    token = token_for(alice) if signed_in else None
    sha256 = hashlib.sha256(query.encode()).hexdigest()
    # Warm up both apps the same way (a `Small` request makes the two-operation document known).
    warm = (method, query, variables, operation_name or ("Small" if query == TWO else None), token)
    for http in (client, pipeline):
        await _send(http, "POST" if method == "GET" else warm[0], *warm[1:])
    assert (app.state.prepared.find(sha256, operation_name) is not None) == short
    assert await _send(client, method, query, variables, operation_name, token) == \
        await _send(pipeline, method, query, variables, operation_name, token)


async def test_a_mutation_by_get_is_refused_the_same_way(
    client: httpx.AsyncClient, pipeline: httpx.AsyncClient, alice: User, token_for: Callable[..., str],
) -> None:
    query = 'mutation { updateViewer(input: {name: "Al"}) { user { name } } }'
    token = token_for(alice)
    for http in (client, pipeline):
        await _send(http, "POST", query, {}, None, token)  # now known and valid
    short = await _send(client, "GET", query, {}, None, token)
    assert short == await _send(pipeline, "GET", query, {}, None, token)
    assert short["status"] == 405 and short["headers"]["allow"] == "POST"


async def test_refused_by_the_rate_limiter_the_same_way(
    settings: Settings, sessions: Sessions, alice: User, token_for: Callable[..., str],
) -> None:
    for number in range(30):  # the first request uses 31 of its 51 points: 29 are left for the second
        await make_task(sessions, alice, f"Task {number}")
    small = settings.model_copy(update={"rate_tiers": RateTiers(user=RateTier(capacity=60, restore_rate=0.01))})
    query = "{ tasks(first: 50) { nodes { title } } }"  # 51 points asked for
    token = token_for(alice)
    answers = []
    for prepared in (True, False):
        async with serve(small.model_copy(update={"prepared_operations": prepared})) as http:
            first = await _send(http, "POST", query, {}, None, token)
            second = await _send(http, "POST", query, {}, None, token)
            answers.append((first, second))
    assert answers[0] == answers[1]
    (first, second) = answers[0]
    assert first["status"] == 200
    assert second["status"] == 429 and second["headers"]["retry-after"]
    assert second["body"]["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


async def test_limits_off_answers_without_cost(settings: Settings) -> None:
    async with serve(settings.model_copy(update={"limits_enabled": False})) as http:
        answers = [await _send(http, "POST", "{ __typename }", {}, None, None) for _ in range(2)]
    assert answers[0] == answers[1] == {
        "status": 200, "body": {"data": {"__typename": "Query"}},
        "headers": {"ratelimit-policy": None, "retry-after": None, "allow": None, "etag": None, "ratelimit": ""},
    }


async def test_counted_as_document_cache_hits(client: httpx.AsyncClient) -> None:
    def hits(metrics: str) -> float:
        line = next(line for line in metrics.splitlines() if line.startswith('tandem_document_cache_lookups_total{result="hit"}'))
        return float(line.split()[-1])

    for _ in range(2):
        await _send(client, "POST", "{ __typename }", {}, None, None)
    before = hits((await client.get("/metrics")).text)
    for _ in range(3):
        await _send(client, "POST", "{ __typename }", {}, None, None)
    assert hits((await client.get("/metrics")).text) == before + 3


async def test_made_up_operation_names_are_not_remembered(app: Starlette, client: httpx.AsyncClient) -> None:
    """The client picks `operationName`: a cached document's memo must not grow with names it does not have."""
    await _send(client, "POST", TWO, {}, "Small", None)
    await _send(client, "POST", TWO, {}, "Small", None)  # cached and valid now
    entry = app.state.persisted.documents.peek(hashlib.sha256(TWO.encode()).hexdigest())
    size = len(entry.derived)
    for number in range(50):
        answer = await _send(client, "POST", TWO, {}, f"Invented{number}", None)
        assert answer["status"] == 400 and answer["body"]["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert len(entry.derived) == size


async def test_prices_remembered_per_document_are_bounded(
    app: Starlette, client: httpx.AsyncClient, alice: User, token_for: Callable[..., str],
) -> None:
    """Variables are the client's: a document remembers the price of at most 32 sets of them, and the
    ones it does not remember are still priced right."""
    token = token_for(alice)
    answers = [await _send(client, "POST", TASKS, {"first": first}, None, token) for first in range(1, 41)]
    entry = app.state.persisted.documents.peek(hashlib.sha256(TASKS.encode()).hexdigest())
    assert sum(1 for key in entry.derived if isinstance(key, tuple) and key[0] == "price") == 32
    asked = [answer["body"]["extensions"]["cost"]["requestedQueryCost"] for answer in answers]
    assert asked == sorted(asked) and asked[-1] > asked[31] > asked[0]  # first: 40 asks for more than first: 32


async def test_later_requests_with_other_variables_answer_the_same(
    app: Starlette, client: httpx.AsyncClient, pipeline: httpx.AsyncClient, sessions: Sessions, alice: User,
    token_for: Callable[..., str],
) -> None:
    """After the first request, the short way copies the executor it built then (schema/executor_template.py):
    later requests bring their own variables, good or bad, and must not see the first one's."""
    await _data(sessions, alice)
    token = token_for(alice)
    query = ("query($first: Int!, $status: [TaskStatus!]) "
             "{ viewer { tasks(first: $first, filter: {status: $status}) { nodes { title } } } }")
    for http in (client, pipeline):
        for _ in range(2):
            await _send(http, "POST", query, {"first": 1}, None, token)
    assert app.state.prepared.find(hashlib.sha256(query.encode()).hexdigest(), None).plan.template is not None
    answers = []
    for variables in ({"first": 3}, {"first": 3, "status": ["DONE"]}, {"first": "many"}, {}, {"first": 2, "unknown": 1},
                      {"first": 3}):
        short = await _send(client, "POST", query, variables, None, token)
        assert short == await _send(pipeline, "POST", query, variables, None, token), variables
        answers.append(short)
    assert len(answers[0]["body"]["data"]["viewer"]["tasks"]["nodes"]) == 3
    assert answers[0] == answers[-1]
    assert [answer["status"] for answer in answers[2:4]] == [400, 400]
