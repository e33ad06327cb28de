"""Automatic persisted queries, as Apollo Client and urql speak them, over POST and GET.

The exchanges below are the ones those clients send: a hash alone first; on
`PERSISTED_QUERY_NOT_FOUND` the hash and the query; from then on the hash alone. Registration is
bounded (size, count, least recently used first) and, with Redis, shared by every instance.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from redis.asyncio import Redis

from app.settings import Settings
from db.engine import Sessions
from db.models import User
from persisted_queries.apq import RedisAPQStore
from tests.conftest import GRAPHQL_RESPONSE, codes, serve, task_count, without_cost
from tests.persisted.conftest import JSON, Post, apq, metric, sha256

VIEWER = "query Viewer { viewer { id name } }"
TYPENAME = "{ __typename }"
CREATE_TASK = 'mutation CreateTask { createTask(input: {title: "From APQ"}) { task { title } } }'
UNKNOWN_FIELD = "{ viewer { shoeSize } }"


def get_params(query: str | None = None, **params: Any) -> str:
    """A GET URL as Apollo Client's `useGETForHashedQueries` builds it (JSON-encoded parameters)."""
    encoded = {key: json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else value
               for key, value in params.items()}
    if query is not None:
        encoded["query"] = query
    return "/graphql?" + urlencode(encoded)


# --- the Apollo Client exchange -------------------------------------------------------------------


@pytest.mark.parametrize(("accept", "status"), [(JSON, 200), (GRAPHQL_RESPONSE, 404)])
async def test_unknown_hash_is_not_found_as_apollo_expects(post: Post, accept: str, status: int) -> None:
    response = await post({"operationName": "Viewer", "variables": {}, "extensions": apq(VIEWER)}, accept=accept)
    assert response.status_code == status
    body = response.json()
    assert codes(body) == ["PERSISTED_QUERY_NOT_FOUND"]
    # Older Apollo Clients match the message, newer ones the code: both must be Apollo's.
    assert body["errors"][0]["message"] == "PersistedQueryNotFound"
    assert body["errors"][0]["extensions"]["requestId"] == response.headers["X-Request-ID"]
    assert "data" not in body


async def test_hash_then_query_then_hash(client: httpx.AsyncClient, post: Post, alice: User) -> None:
    first = await post({"operationName": "Viewer", "extensions": apq(VIEWER)}, accept=JSON, as_user=alice)
    assert codes(first.json()) == ["PERSISTED_QUERY_NOT_FOUND"]

    retry = await post({"operationName": "Viewer", "query": VIEWER, "extensions": apq(VIEWER)}, as_user=alice)
    assert retry.status_code == 200
    assert without_cost(retry.json()) == {"data": {"viewer": {"id": retry.json()["data"]["viewer"]["id"], "name": "Alice"}}}

    again = await post({"operationName": "Viewer", "extensions": apq(VIEWER)}, as_user=alice)
    assert again.status_code == 200
    assert again.json()["data"]["viewer"]["name"] == "Alice"

    assert await metric(client, "tandem_persisted_query_lookups_total", store="apq", result="miss") == 1
    assert await metric(client, "tandem_persisted_query_lookups_total", store="apq", result="hit") == 1
    assert await metric(client, "tandem_persisted_query_registrations_total") == 1


async def test_upper_case_hash_names_the_same_query(post: Post) -> None:
    await post({"query": TYPENAME, "extensions": apq(TYPENAME)})
    upper = {"persistedQuery": {"version": 1, "sha256Hash": sha256(TYPENAME).upper()}}
    response = await post({"extensions": upper})
    assert without_cost(response.json()) == {"data": {"__typename": "Query"}}


async def test_a_registered_mutation_runs_again_by_hash(post: Post, sessions: Sessions, alice: User) -> None:
    registered = await post({"query": CREATE_TASK, "extensions": apq(CREATE_TASK)}, as_user=alice)
    assert registered.json()["data"]["createTask"]["task"]["title"] == "From APQ"
    again = await post({"extensions": apq(CREATE_TASK)}, as_user=alice)
    assert again.json()["data"]["createTask"]["task"]["title"] == "From APQ"
    assert await task_count(sessions) == 2


# --- bad input ------------------------------------------------------------------------------------


async def test_wrong_hash_for_the_query_is_refused_and_not_stored(post: Post) -> None:
    lying = {"persistedQuery": {"version": 1, "sha256Hash": sha256(VIEWER)}}
    response = await post({"query": TYPENAME, "extensions": lying})
    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_USER_INPUT"]
    assert "not the SHA-256" in response.json()["errors"][0]["message"]
    # Nothing was registered under the hash it lied about.
    follow_up = await post({"extensions": apq(VIEWER)})
    assert codes(follow_up.json()) == ["PERSISTED_QUERY_NOT_FOUND"]


@pytest.mark.parametrize("version", [2, 0, "1", True, None, 1.5])
@pytest.mark.parametrize("accept", [JSON, GRAPHQL_RESPONSE])
async def test_unknown_version_is_bad_user_input(post: Post, version: Any, accept: str) -> None:
    response = await post({"query": VIEWER, "extensions": apq(VIEWER, version)}, accept=accept)
    assert response.status_code == 400
    body = response.json()
    assert codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["message"] == "Unsupported persisted query version: only version 1 is supported."


@pytest.mark.parametrize("persisted", [
    pytest.param("abc", id="not an object"),
    pytest.param({"version": 1}, id="no hash"),
    pytest.param({"version": 1, "sha256Hash": "abc"}, id="short hash"),
    pytest.param({"version": 1, "sha256Hash": "z" * 64}, id="not hex"),
    pytest.param({"version": 1, "sha256Hash": 12345}, id="number"),
])
async def test_malformed_persisted_query_is_bad_user_input(post: Post, persisted: Any) -> None:
    response = await post({"extensions": {"persistedQuery": persisted}})
    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_USER_INPUT"]


async def test_oversized_query_is_not_registered(settings: Settings) -> None:
    # Big in bytes, small in every other limit (aliases, tokens): a long comment.
    big = "query Big { __typename }\n# " + "padding " * 200
    assert len(big) > 1000
    async with serve(settings.model_copy(update={"apq_max_query_bytes": 1000})) as http:
        response = await http.post("/graphql", json={"query": big, "extensions": apq(big)},
                                   headers={"Accept": GRAPHQL_RESPONSE})
        assert response.status_code == 400
        body = response.json()
        assert codes(body) == ["BAD_USER_INPUT"]
        assert "at most 1000 bytes" in body["errors"][0]["message"]
        follow_up = await http.post("/graphql", json={"extensions": apq(big)})
        assert codes(follow_up.json()) == ["PERSISTED_QUERY_NOT_FOUND"]
        # The same text without the APQ extension is an ordinary request and runs.
        plain = await http.post("/graphql", json={"query": big})
        assert plain.json()["data"] == {"__typename": "Query"}


async def test_a_query_that_does_not_validate_is_not_registered(post: Post) -> None:
    response = await post({"query": UNKNOWN_FIELD, "extensions": apq(UNKNOWN_FIELD)})
    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_USER_INPUT"]
    follow_up = await post({"extensions": apq(UNKNOWN_FIELD)})
    assert codes(follow_up.json()) == ["PERSISTED_QUERY_NOT_FOUND"]


@pytest.mark.parametrize(("accept", "status"), [(JSON, 200), (GRAPHQL_RESPONSE, 400)])
async def test_operation_name_that_names_nothing_is_an_error_not_a_500(post: Post, accept: str, status: int) -> None:
    await post({"query": TYPENAME, "extensions": apq(TYPENAME)})
    response = await post({"operationName": "Elsewhere", "extensions": apq(TYPENAME)}, accept=accept)
    assert response.status_code == status
    assert codes(response.json()) == ["BAD_USER_INPUT"]
    assert response.json()["errors"][0]["message"] == "The document has no operation named 'Elsewhere'."


@pytest.mark.parametrize("body", [
    pytest.param({"extensions": {}}, id="no query, no hash"),
    pytest.param({"query": "", "extensions": {}}, id="empty query"),
    pytest.param({"query": "   "}, id="blank query"),
])
async def test_a_request_naming_nothing_is_bad_user_input(post: Post, body: dict[str, Any]) -> None:
    response = await post(body)
    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_USER_INPUT"]
    assert response.json()["errors"][0]["message"] == "The request has no `query`."


# --- GET: queries only, cacheable -----------------------------------------------------------------


async def test_get_by_hash_is_cacheable_and_revalidates(client: httpx.AsyncClient, post: Post) -> None:
    url = get_params(extensions=apq(TYPENAME))
    missing = await client.get(url)
    assert missing.status_code == 200  # legacy JSON: Apollo retries on this
    assert codes(missing.json()) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert missing.headers["cache-control"] == "no-store"

    await post({"query": TYPENAME, "extensions": apq(TYPENAME)})
    response = await client.get(url)
    assert response.status_code == 200
    assert without_cost(response.json()) == {"data": {"__typename": "Query"}}
    assert response.headers["cache-control"] == "public, max-age=60"
    assert {"Accept", "Authorization"} <= {v.strip() for v in response.headers["vary"].split(",")}
    etag = response.headers["etag"]

    revalidated = await client.get(url, headers={"If-None-Match": etag})
    assert revalidated.status_code == 304
    assert revalidated.content == b""
    assert revalidated.headers["etag"] == etag
    changed = await client.get(url, headers={"If-None-Match": '"something-else"'})
    assert changed.status_code == 200


async def test_registration_over_get_works_too(client: httpx.AsyncClient) -> None:
    response = await client.get(get_params(TYPENAME, extensions=apq(TYPENAME)))
    assert without_cost(response.json()) == {"data": {"__typename": "Query"}}
    by_hash = await client.get(get_params(extensions=apq(TYPENAME)))
    assert without_cost(by_hash.json()) == {"data": {"__typename": "Query"}}


async def test_signed_in_get_is_private(client: httpx.AsyncClient, post: Post, alice: User,
                                         token_for: Any) -> None:
    await post({"query": VIEWER, "extensions": apq(VIEWER)})
    headers = {"Authorization": f"Bearer {token_for(alice)}"}
    response = await client.get(get_params(extensions=apq(VIEWER)), headers=headers)
    assert response.json()["data"]["viewer"]["name"] == "Alice"
    assert response.headers["cache-control"] == "private, no-cache"
    revalidated = await client.get(get_params(extensions=apq(VIEWER)),
                                   headers={**headers, "If-None-Match": response.headers["etag"]})
    assert revalidated.status_code == 304


async def test_get_result_with_errors_is_never_stored(client: httpx.AsyncClient) -> None:
    missing_task = 'query { task(id: "VGFzazo5OTk5OTk") { id } }'
    response = await client.get(get_params(missing_task, extensions=apq(missing_task)))
    assert response.json()["errors"]
    assert response.headers["cache-control"] == "no-store"
    assert "etag" not in response.headers


async def test_get_never_runs_a_registered_mutation(
    client: httpx.AsyncClient, post: Post, sessions: Sessions, alice: User, token_for: Any
) -> None:
    await post({"query": CREATE_TASK, "extensions": apq(CREATE_TASK)}, as_user=alice)
    response = await client.get(get_params(extensions=apq(CREATE_TASK)),
                                headers={"Authorization": f"Bearer {token_for(alice)}"})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert await task_count(sessions) == 1  # the registration, not the GET


async def test_browser_get_with_a_hash_is_answered_not_graphiql(client: httpx.AsyncClient, post: Post) -> None:
    await post({"query": TYPENAME, "extensions": apq(TYPENAME)})
    response = await client.get(get_params(extensions=apq(TYPENAME)), headers={"Accept": "text/html,*/*"})
    assert without_cost(response.json()) == {"data": {"__typename": "Query"}}


async def test_get_with_extensions_that_are_not_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql?extensions=%7Bnot-json")
    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_USER_INPUT"]


# --- bounded registrations ------------------------------------------------------------------------


QUERIES = [f"query Q{i} {{ __typename }}" for i in range(3)]


async def register_three_and_use_the_first(http: httpx.AsyncClient) -> list[list[str]]:
    """Register Q0, Q1; use Q0 (now the most recent); register Q2 (evicts Q1); then look all up."""
    for query in QUERIES[:2]:
        assert "data" in (await http.post("/graphql", json={"query": query, "extensions": apq(query)})).json()
    assert "data" in (await http.post("/graphql", json={"extensions": apq(QUERIES[0])})).json()
    assert "data" in (await http.post("/graphql", json={"query": QUERIES[2], "extensions": apq(QUERIES[2])})).json()
    return [codes((await http.post("/graphql", json={"extensions": apq(q)})).json()) for q in QUERIES]


async def test_registrations_are_bounded_least_recently_used_first(settings: Settings) -> None:
    async with serve(settings.model_copy(update={"apq_max_entries": 2})) as http:
        assert await register_three_and_use_the_first(http) == [[], ["PERSISTED_QUERY_NOT_FOUND"], []]


async def test_redis_registrations_are_bounded_least_recently_used_first(settings: Settings, redis_url: str) -> None:
    async with serve(settings.model_copy(update={"apq_max_entries": 2, "redis_url": redis_url})) as http:
        assert await register_three_and_use_the_first(http) == [[], ["PERSISTED_QUERY_NOT_FOUND"], []]


async def test_redis_keeps_the_order_of_uses_made_within_one_millisecond(redis_url: str) -> None:
    """Last use is ordered by a counter in Redis, not a clock: back-to-back uses never tie."""
    redis = Redis.from_url(redis_url)
    store = RedisAPQStore(redis, 2, prefix=f"tandem:{{apq}}:test-{uuid.uuid4().hex}")
    try:
        for _ in range(20):  # each round takes well under a millisecond or two
            await store.put("a", "A")
            await store.put("b", "B")
            assert await store.get("a") == "A"
            await store.put("c", "C")  # evicts b, the least recently used
            assert [await store.get(sha) for sha in ("a", "b", "c")] == ["A", None, "C"]
            await redis.delete(*store.keys)
    finally:
        await redis.aclose()


# --- shared through Redis -------------------------------------------------------------------------


async def test_instances_share_registrations_through_redis(settings: Settings, redis_url: str) -> None:
    shared = settings.model_copy(update={"redis_url": redis_url})
    async with serve(shared) as first, serve(shared) as second:
        assert codes((await second.post("/graphql", json={"extensions": apq(VIEWER)})).json()) == [
            "PERSISTED_QUERY_NOT_FOUND"]
        await first.post("/graphql", json={"query": VIEWER, "extensions": apq(VIEWER)})
        response = await second.post("/graphql", json={"extensions": apq(VIEWER)})
        assert without_cost(response.json()) == {"data": {"viewer": None}}


async def test_redis_down_degrades_to_full_queries(settings: Settings) -> None:
    async with serve(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/6"})) as http:
        missing = await http.post("/graphql", json={"extensions": apq(TYPENAME)})
        assert missing.status_code == 200
        assert codes(missing.json()) == ["PERSISTED_QUERY_NOT_FOUND"]
        full = await http.post("/graphql", json={"query": TYPENAME, "extensions": apq(TYPENAME)})
        assert without_cost(full.json()) == {"data": {"__typename": "Query"}}


async def test_a_shared_answer_carries_no_callers_budget(
    client: httpx.AsyncClient, post: Post, alice: User, token_for: Callable[..., str],
) -> None:
    """A CDN hands a `public` answer to everyone: the caller's remaining budget must not be in it."""
    await post({"query": TYPENAME, "extensions": apq(TYPENAME)})
    url = get_params(extensions=apq(TYPENAME))
    shared = await client.get(url)
    assert shared.headers["cache-control"] == "public, max-age=60"
    assert shared.json()["extensions"] == {"cost": {"requestedQueryCost": 0, "actualQueryCost": 0}}
    assert "ratelimit" not in shared.headers and "ratelimit-policy" not in shared.headers
    own = await client.get(url, headers={"Authorization": f"Bearer {token_for(alice)}"})
    assert own.headers["cache-control"] == "private, no-cache"
    assert own.json()["extensions"]["cost"]["throttleStatus"]["maximumAvailable"] > 0
    assert own.headers["ratelimit"].startswith('"user";r=')
    by_post = await client.post("/graphql", json={"query": TYPENAME})  # never cached: the budget stays
    assert "throttleStatus" in by_post.json()["extensions"]["cost"] and "ratelimit" in by_post.headers


async def test_an_answer_about_the_caller_is_never_shared(client: httpx.AsyncClient) -> None:
    """`rateLimit` is this caller's budget: even anonymous, its answer is private."""
    query = "{ rateLimit { tier remaining } }"
    response = await client.get(get_params(query))
    assert response.json()["data"]["rateLimit"]["tier"] == "anonymous"
    assert response.headers["cache-control"] == "private, no-cache"
    assert "throttleStatus" in response.json()["extensions"]["cost"] and "ratelimit" in response.headers
