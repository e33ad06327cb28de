"""The cost-based rate limiter over HTTP, with the in-process buckets (no Redis configured):
charges, refunds, 429 with `Retry-After`, the feedback in every response, tiers and bucket keys,
and batches. The buckets refill at a thousandth of a point a second, so nothing refills mid-test.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import httpx
import pytest

from db.engine import Sessions
from db.models import User
from tests.conftest import GRAPHQL_RESPONSE, task_count
from tests.factories import make_task, make_user
from tests.limits.conftest import STILL, LimitedApp, seconds_to_restore, tiers

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

TEN = "{ " + " ".join(f"v{i}: viewer {{ id }}" for i in range(10)) + " }"  # 10 objects: costs 10
ROOT_TYPES = "{ __schema { queryType { name } } }"  # costs 1 (two tenths, rounded up), signed in or not
CREATE = 'mutation { createTask(input: {title: "Throttled?"}) { task { id } } }'


def _cost(response: httpx.Response) -> dict[str, Any]:
    cost: dict[str, Any] = response.json()["extensions"]["cost"]
    return cost


def _codes(response: httpx.Response) -> list[str]:
    return [error["extensions"]["code"] for error in response.json().get("errors", [])]


# --- feedback on every response -----------------------------------------------------------------


@pytest.mark.parametrize(("query", "status"), [
    ("{ viewer { id } }", 200),
    ("{ viewer { id ", 400),  # does not parse
    ("{ viewer { shoeSize } }", 400),  # does not validate
    ("{ " + " ".join(f"a{i}: __typename" for i in range(16)) + " }", 400),  # too many aliases
    ('{ task(id: "nope") { id } }', 200),  # a resolver error
])
async def test_every_response_reports_its_cost_and_the_budget(
    limited_app: LimitedApp, alice: User, query: str, status: int
) -> None:
    async with limited_app(rate_tiers=tiers(capacity=100)) as limited:
        response = await limited.query(query, as_user=alice)
    assert response.status_code == status
    cost = _cost(response)
    assert set(cost) == {"requestedQueryCost", "actualQueryCost", "throttleStatus"}
    assert cost["throttleStatus"]["maximumAvailable"] == 100
    assert cost["throttleStatus"]["restoreRate"] == STILL
    assert cost["throttleStatus"]["currentlyAvailable"] == 100 - cost["actualQueryCost"]
    assert response.headers["RateLimit-Policy"] == f'"user";q=100;w={math.ceil(100 / STILL)}'
    assert response.headers["RateLimit"].startswith(f'"user";r={100 - cost["actualQueryCost"]};t=')


async def test_the_budget_is_spent_then_429_with_retry_after(limited_app: LimitedApp, alice: User) -> None:
    async with limited_app(rate_tiers=tiers(capacity=30)) as limited:
        available = []
        for _ in range(3):
            response = await limited.query(TEN, as_user=alice)
            assert response.status_code == 200
            assert _cost(response)["requestedQueryCost"] == _cost(response)["actualQueryCost"] == 10
            available.append(_cost(response)["throttleStatus"]["currentlyAvailable"])
        limited.resolved.clear()
        throttled = await limited.query(TEN, as_user=alice)
        assert limited.resolved == []  # nothing ran

    assert available == [20, 10, 0]
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) in seconds_to_restore(10)
    assert throttled.headers["RateLimit"] == f'"user";r=0;t={math.ceil(30 / STILL)}'
    body = throttled.json()
    assert "data" not in body
    [error] = body["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["retryAfter"] == int(throttled.headers["Retry-After"])
    assert "costs 10" in error["message"] and "0 of 30" in error["message"]
    assert _cost(throttled) == {"requestedQueryCost": 10, "actualQueryCost": 0, "throttleStatus": {
        "maximumAvailable": 30, "currentlyAvailable": 0, "restoreRate": STILL}}


async def test_legacy_json_clients_get_429_too(limited_app: LimitedApp, alice: User) -> None:
    async with limited_app(rate_tiers=tiers(capacity=15)) as limited:
        token = limited.token_for(alice)
        for expected in (200, 429):
            response = await limited.http.post("/graphql", json={"query": TEN},
                                               headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == expected
    assert response.headers["content-type"].startswith("application/json")
    assert _codes(response) == ["RATE_LIMITED"]


async def test_a_throttled_mutation_changes_nothing(
    limited_app: LimitedApp, alice: User, sessions: Sessions
) -> None:
    async with limited_app(rate_tiers=tiers(capacity=15)) as limited:
        assert (await limited.query(TEN, as_user=alice)).status_code == 200  # 5 left; a mutation costs 11
        before = await task_count(sessions)
        limited.resolved.clear()
        response = await limited.query(CREATE, as_user=alice)
        assert limited.resolved == []
    assert response.status_code == 429 and _codes(response) == ["RATE_LIMITED"]
    assert await task_count(sessions) == before


async def test_a_query_dearer_than_the_whole_bucket_is_too_complex(limited_app: LimitedApp, alice: User) -> None:
    # Waiting would never help: it is refused as too complex, with the bucket's size as the limit.
    async with limited_app(rate_tiers=tiers(capacity=8)) as limited:
        response = await limited.query(TEN, as_user=alice)
        assert limited.resolved == []
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"] | {"requestId": None} == {
        "code": "QUERY_TOO_COMPLEX", "limit": 8, "found": 10, "requestId": None}


async def test_huge_first_is_refused_before_any_resolver(limited_app: LimitedApp, alice: User) -> None:
    async with limited_app() as limited:
        response = await limited.query("{ tasks(first: 1000000) { nodes { id } } }", as_user=alice)
        assert limited.resolved == []
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert error["message"] == "The query costs 1000001; the limit is 1000."


async def test_in_process_buckets_hold_under_concurrency(limited_app: LimitedApp, alice: User) -> None:
    async with limited_app(rate_tiers=tiers(capacity=55)) as limited:
        token = limited.token_for(alice)
        responses = await asyncio.gather(*(limited.query(TEN, token=token) for _ in range(20)))
    assert sorted(r.status_code for r in responses) == [200] * 5 + [429] * 15


# --- refunds ------------------------------------------------------------------------------------


async def test_unused_cost_is_refunded(limited_app: LimitedApp, alice: User, sessions: Sessions) -> None:
    await make_task(sessions, alice, "One")
    await make_task(sessions, alice, "Two")
    async with limited_app(rate_tiers=tiers(capacity=200)) as limited:
        response = await limited.query("{ tasks(first: 50) { nodes { owner { name } } } }", as_user=alice)
        after = await limited.query("{ rateLimit { remaining cost } }", as_user=alice)
    # Asked for 1 + 50 * 2; got a connection, 2 tasks and their 2 owners.
    assert _cost(response)["requestedQueryCost"] == 101
    assert _cost(response)["actualQueryCost"] == 5, response.text
    assert _cost(response)["throttleStatus"]["currentlyAvailable"] == 195
    assert after.json()["data"]["rateLimit"] == {"remaining": 195, "cost": 0}


async def test_a_failed_query_is_refunded_whole(limited_app: LimitedApp, alice: User) -> None:
    async with limited_app(rate_tiers=tiers(capacity=50)) as limited:
        response = await limited.query('{ task(id: "VGFzazo5OTk5OTk") { owner { name } } }', as_user=alice)
    assert _codes(response) == ["NOT_FOUND"]
    assert _cost(response) == {"requestedQueryCost": 2, "actualQueryCost": 0,
                               "throttleStatus": {"maximumAvailable": 50, "currentlyAvailable": 50,
                                                  "restoreRate": STILL}}


# --- Query.rateLimit ----------------------------------------------------------------------------


async def test_rate_limit_reads_the_budget_without_spending_it(limited_app: LimitedApp, alice: User) -> None:
    query = "{ rateLimit { tier limit remaining restoreRate cost resetAt } }"
    async with limited_app(rate_tiers=tiers(capacity=40)) as limited:
        first = (await limited.query(query, as_user=alice)).json()
        second = (await limited.query(query, as_user=alice)).json()
        with_work = (await limited.query("{ rateLimit { remaining cost } " + TEN[1:], as_user=alice)).json()
    assert first["data"]["rateLimit"]["remaining"] == second["data"]["rateLimit"]["remaining"] == 40
    assert first["data"]["rateLimit"] | {"resetAt": None} == {
        "tier": "user", "limit": 40, "remaining": 40, "restoreRate": STILL, "cost": 0, "resetAt": None}
    assert first["extensions"]["cost"]["requestedQueryCost"] == 0
    # Asked along with other fields, it reports the charge for the whole query.
    assert with_work["data"]["rateLimit"] == {"remaining": 30, "cost": 10}


async def test_rate_limit_is_null_when_limits_are_off(limited_app: LimitedApp) -> None:
    async with limited_app(limits_enabled=False) as limited:
        response = await limited.query("{ rateLimit { remaining } }")
    assert response.json() == {"data": {"rateLimit": None}}
    assert "RateLimit" not in response.headers


# --- who pays -----------------------------------------------------------------------------------


async def test_anonymous_callers_pay_by_address(limited_app: LimitedApp) -> None:
    async with limited_app(rate_tiers=tiers(capacity=1)) as limited:
        assert _cost(await limited.query(ROOT_TYPES))["actualQueryCost"] == 1
        refused = await limited.query(ROOT_TYPES)
        other = httpx.AsyncClient(transport=httpx.ASGITransport(app=limited.app, client=("10.9.8.7", 1234)),
                                  base_url="http://tandem.test")
        async with other:
            elsewhere = await other.post("/graphql", json={"query": ROOT_TYPES},
                                         headers={"Accept": GRAPHQL_RESPONSE})
    assert refused.status_code == 429
    assert refused.headers["RateLimit-Policy"].startswith('"anonymous";')
    assert elsewhere.status_code == 200


async def test_each_client_of_a_user_has_its_own_bucket(limited_app: LimitedApp, alice: User, bob: User) -> None:
    async with limited_app(rate_tiers=tiers(capacity=10)) as limited:
        web = limited.token_for(alice, client_id="web")
        assert (await limited.query(TEN, token=web)).status_code == 200
        assert (await limited.query(TEN, token=web)).status_code == 429
        assert (await limited.query(TEN, token=limited.token_for(alice, client_id="cli"))).status_code == 200
        assert (await limited.query(TEN, as_user=bob)).status_code == 200


async def test_tiers_come_from_the_settings(limited_app: LimitedApp, sessions: Sessions, alice: User) -> None:
    admin = await make_user(sessions, "Ada", role="admin")
    from app.settings import RateTier, RateTiers

    configured = RateTiers(user=RateTier(capacity=30, restore_rate=1), admin=RateTier(capacity=300, restore_rate=5))
    async with limited_app(rate_tiers=configured) as limited:
        as_user = await limited.query(TEN, as_user=alice)
        as_admin = await limited.query(TEN, as_user=admin)
        anonymous = await limited.query("{ __typename }")
    assert as_user.headers["RateLimit-Policy"] == '"user";q=30;w=30'
    assert as_admin.headers["RateLimit-Policy"] == '"admin";q=300;w=60'
    assert anonymous.headers["RateLimit-Policy"] == '"anonymous";q=1000;w=100'  # the default


# --- batches ------------------------------------------------------------------------------------


async def test_a_batch_runs_in_order_and_each_operation_is_charged(
    limited_app: LimitedApp, alice: User
) -> None:
    batch = [
        {"query": 'mutation { createTask(input: {title: "First"}) { task { title } } }'},
        {"query": "{ tasks { nodes { title } } }"},
        {"query": "{ viewer { name } }"},
    ]
    async with limited_app(rate_tiers=tiers(capacity=100)) as limited:
        response = await limited.post(batch, as_user=alice)
    assert response.status_code == 200
    bodies = response.json()
    assert [list(body["data"]) for body in bodies] == [["createTask"], ["tasks"], ["viewer"]]
    assert bodies[1]["data"]["tasks"]["nodes"] == [{"title": "First"}]  # the mutation ran first
    assert [body["extensions"]["cost"]["actualQueryCost"] for body in bodies] == [11, 2, 1]
    assert bodies[2]["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 100 - 14
    assert response.headers["RateLimit"].startswith('"user";r=86;')


async def test_batch_flood_is_refused_before_any_resolver(limited_app: LimitedApp, alice: User) -> None:
    async with limited_app() as limited:
        response = await limited.post([{"query": "{ viewer { id } }"}] * 11, as_user=alice)
        assert limited.resolved == []
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert error["message"] == "The batch has 11 operations; the limit is 10."


async def test_batch_limit_is_a_setting_and_zero_refuses_batches(limited_app: LimitedApp) -> None:
    async with limited_app(max_batch_operations=0) as limited:
        response = await limited.post([{"query": "{ __typename }"}])
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_batch_throttled_in_part_answers_200(limited_app: LimitedApp, alice: User) -> None:
    async with limited_app(rate_tiers=tiers(capacity=15)) as limited:
        response = await limited.post([{"query": TEN}, {"query": TEN}, "not an object"], as_user=alice)
        whole = await limited.post([{"query": TEN}, {"query": TEN}], as_user=alice)
    assert response.status_code == 200
    first, second, third = response.json()
    assert "errors" not in first
    assert [e["extensions"]["code"] for e in second["errors"]] == ["RATE_LIMITED"]
    assert [e["extensions"]["code"] for e in third["errors"]] == ["BAD_USER_INPUT"]
    assert "Retry-After" not in response.headers
    assert whole.status_code == 429
    assert int(whole.headers["Retry-After"]) in seconds_to_restore(5)
