"""`Idempotency-Key` on GraphQL mutations and REST calls: replayed verbatim, refused when reused for
another request (422) or while the first is still running (409), scoped to client + user, kept in
the database, in the same transaction as the request's effects."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select, update

from app.settings import Settings
from db.engine import Sessions
from db.idempotency import IdempotencyKey
from db.models import Task, User, utcnow
from rest.housekeeping import Housekeeping
from rest.idempotency import _storable
from rest.idempotency_store import StoredResponse
from tests.conftest import GRAPHQL_RESPONSE, serve, task_count
from tests.factories import make_task, make_user
from tests.rest.conftest import SOURCE, eventually
from tests.rest.test_inbound_webhooks import create, signed

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
CREATE = """mutation($title: String!) { createTask(input: {title: $title}) { task { id title } userErrors { code } } }"""
UPDATE = """mutation($id: ID!) { updateTask(input: {id: $id, title: "Renamed"}) { task { title } userErrors { code } } }"""


def _headers(token: str | None, key: str | bytes | None) -> dict[str, str | bytes]:
    headers: dict[str, str | bytes] = {"Accept": GRAPHQL_RESPONSE}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


async def _mutate(http: httpx.AsyncClient, query: str, variables: dict[str, Any], token: str | None,
                  key: str | bytes | None = "key-1") -> httpx.Response:
    return await http.post("/graphql", json={"query": query, "variables": variables}, headers=_headers(token, key))


def _code(response: httpx.Response) -> str:
    code: str = response.json()["errors"][0]["extensions"]["code"]
    return code


async def _replays_and_refuses_reuse(http: httpx.AsyncClient, sessions: Sessions, token: str) -> None:
    first = await _mutate(http, CREATE, {"title": "Once"}, token)
    retry = await _mutate(http, CREATE, {"title": "Once"}, token)
    assert first.status_code == retry.status_code == 200
    assert retry.content == first.content  # byte for byte: the same task id, not a second task
    assert retry.headers["content-type"] == first.headers["content-type"]
    assert retry.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert retry.headers["x-request-id"] != first.headers["x-request-id"]
    assert await task_count(sessions) == 1

    other = await _mutate(http, CREATE, {"title": "Something else"}, token)
    assert (other.status_code, _code(other)) == (422, "IDEMPOTENCY_KEY_REUSED")
    assert await task_count(sessions) == 1


async def test_database_store_replays_and_refuses_reuse(
    client: httpx.AsyncClient, sessions: Sessions, alice: User, token_for: Callable[..., str]
) -> None:
    await _replays_and_refuses_reuse(client, sessions, token_for(alice))


@SQLITE_ONLY
async def test_with_redis_the_keys_still_live_in_the_database(
    settings: Settings, redis_url: str, sessions: Sessions, alice: User, token_for: Callable[..., str]
) -> None:
    """Redis is never the only copy: a key's answer commits with the mutation it stands for."""
    async with serve(settings.model_copy(update={"redis_url": redis_url})) as http:
        await _replays_and_refuses_reuse(http, sessions, token_for(alice))
    async with sessions() as session:
        row = (await session.scalars(select(IdempotencyKey))).one()
    assert row.state == "completed" and row.expires_at - utcnow() > timedelta(hours=23)
    redis = Redis.from_url(redis_url)
    try:
        assert [key async for key in redis.scan_iter(match="*idempotency*")] == []
    finally:
        await redis.aclose()


async def test_events_of_a_keyed_mutation_follow_its_commit(
    app: Any, client: httpx.AsyncClient, sessions: Sessions, alice: User, token_for: Callable[..., str]
) -> None:
    subscription = await app.state.realtime.subscribe_tasks()
    try:
        response = await _mutate(client, CREATE, {"title": "Announced"}, token_for(alice))
        assert response.status_code == 200
        message = await asyncio.wait_for(subscription.__anext__(), 5)
    finally:
        await subscription.close()
    assert b"CREATED" in message
    assert await task_count(sessions) == 1  # committed before anyone heard of it


async def test_keys_are_scoped_to_client_and_user(
    client: httpx.AsyncClient, sessions: Sessions, alice: User, bob: User, token_for: Callable[..., str]
) -> None:
    for token in (token_for(alice), token_for(bob), token_for(alice, client_id="mobile-app")):
        response = await _mutate(client, CREATE, {"title": "Same key"}, token)
        assert "idempotent-replayed" not in response.headers
    assert await task_count(sessions) == 3


@SQLITE_ONLY
async def test_malformed_keys_are_refused(client: httpx.AsyncClient, alice: User, token_for: Callable[..., str]) -> None:
    for key in (b"", b"x" * 256, b"has space", "é".encode()):
        response = await _mutate(client, CREATE, {"title": "x"}, token_for(alice), key=key)
        assert (response.status_code, _code(response)) == (400, "INVALID_IDEMPOTENCY_KEY"), key


@SQLITE_ONLY
async def test_requests_that_fail_before_running_are_not_stored(
    client: httpx.AsyncClient, sessions: Sessions, alice: User, token_for: Callable[..., str]
) -> None:
    bad_token = await _mutate(client, CREATE, {"title": "x"}, "not-a-token")
    assert (bad_token.status_code, _code(bad_token)) == (401, "UNAUTHENTICATED")
    good = await _mutate(client, CREATE, {"title": "x"}, token_for(alice))
    assert good.status_code == 200 and "idempotent-replayed" not in good.headers
    # Not stored: answers a retry should not see again.
    def stored(status: int, body: bytes = b"{}") -> bool:
        return _storable("graphql", StoredResponse(status, [], body))
    assert [stored(s) for s in (200, 400, 401, 409, 429, 500, 503)] == [True, True, False, False, False, False, False]
    assert not stored(200, b'{"errors": [{"extensions": {"code": "INTERNAL_SERVER_ERROR"}}], "data": null}')
    assert stored(200, b'{"errors": [{"extensions": {"code": "NOT_FOUND"}}], "data": null}')


async def test_expired_or_abandoned_keys_run_again(
    client: httpx.AsyncClient, sessions: Sessions, alice: User, token_for: Callable[..., str]
) -> None:
    token = token_for(alice)
    await _mutate(client, CREATE, {"title": "Day one"}, token)
    async with sessions.begin() as session:
        await session.execute(update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))
    again = await _mutate(client, CREATE, {"title": "Day two"}, token)  # 24 h later the key is free
    assert again.status_code == 200 and "idempotent-replayed" not in again.headers
    async with sessions.begin() as session:  # as if its request had died holding the key
        await session.execute(update(IdempotencyKey).values(state="in_progress",
                                                            locked_until=utcnow() - timedelta(seconds=1)))
    taken_over = await _mutate(client, CREATE, {"title": "Day two"}, token)
    assert taken_over.status_code == 200 and "idempotent-replayed" not in taken_over.headers
    assert await task_count(sessions) == 3

    async with sessions.begin() as session:
        await session.execute(update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))
    await Housekeeping(sessions).clean()
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0


async def test_rest_calls_take_keys_too(client: httpx.AsyncClient, sessions: Sessions, bot: User) -> None:
    body, headers = signed(create("Via REST"))
    headers["Idempotency-Key"] = "rest-key"
    first = await client.post(f"/webhooks/{SOURCE}", content=body, headers=headers)
    retry = await client.post(f"/webhooks/{SOURCE}", content=body, headers=headers)
    assert first.status_code == retry.status_code == 202
    assert retry.content == first.content and retry.headers["idempotent-replayed"] == "true"
    other_body, other_headers = signed(create("Another"))
    other = await client.post(f"/webhooks/{SOURCE}", content=other_body,
                              headers={**other_headers, "Idempotency-Key": "rest-key"})
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert set(other.json()["error"]) == {"code", "message", "details", "requestId"}


# --- a retry while the first request still runs ---------------------------------------------------


@contextlib.asynccontextmanager
async def _task_row_held(database_url: str, task_id: int) -> AsyncIterator[None]:
    """Block writers of the task from another connection: a row lock on PostgreSQL, the write lock
    on SQLite. The first request then stays in its mutation until we let go."""
    if database_url.startswith("postgresql"):
        connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", task_id)
        try:
            yield
        finally:
            await transaction.rollback()
            await connection.close()
        return
    # In a thread: waiting here for the write lock must not stop the event loop, whose own
    # connections may need it to finish the transaction they hold.
    lite = sqlite3.connect(database_url.split("///", 1)[1], isolation_level=None, check_same_thread=False,
                           timeout=30)
    await asyncio.to_thread(lite.execute, "BEGIN IMMEDIATE")
    try:
        yield
    finally:
        await asyncio.to_thread(lite.execute, "ROLLBACK")
        lite.close()


async def _waiting_on_a_lock(database_url: str, count: int = 1) -> bool:
    """Whether `count` sessions wait for a lock (asked on a connection of its own: inside a transaction
    PostgreSQL would answer from the snapshot it took first)."""
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        waiting = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")
    finally:
        await connection.close()
    return int(waiting) >= count


# SQLite has one writer: the first request's transaction would itself wait for the lock held here.
POSTGRES_ONLY = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


@POSTGRES_ONLY
async def test_a_retry_while_the_first_runs_waits_for_its_answer(
    settings: Settings, sessions: Sessions, alice: User, token_for: Callable[..., str]
) -> None:
    task = await make_task(sessions, alice, "Contended")
    variables, token = {"id": _global("Task", task.id)}, token_for(alice)
    async with serve(settings.model_copy(update={"idempotency_wait_seconds": 30})) as http:
        async with _task_row_held(settings.database_url, task.id):
            first = asyncio.ensure_future(_mutate(http, UPDATE, variables, token))
            await eventually(lambda: _waiting_on_a_lock(settings.database_url), "the first request to wait")
            retry = asyncio.ensure_future(_mutate(http, UPDATE, variables, token))
            await eventually(lambda: _waiting_on_a_lock(settings.database_url, 2), "the retry to wait for the first")
            assert not first.done() and not retry.done()
        completed, replayed = await asyncio.wait_for(asyncio.gather(first, retry), 30)
    assert completed.json()["data"]["updateTask"]["task"]["title"] == "Renamed"
    assert replayed.content == completed.content and replayed.headers["idempotent-replayed"] == "true"


@POSTGRES_ONLY
async def test_a_retry_that_waited_long_enough_is_409(
    settings: Settings, sessions: Sessions, alice: User, token_for: Callable[..., str]
) -> None:
    task = await make_task(sessions, alice, "Contended")
    variables, token = {"id": _global("Task", task.id)}, token_for(alice)
    async with serve(settings.model_copy(update={"idempotency_wait_seconds": 0.3})) as http:
        async with _task_row_held(settings.database_url, task.id):
            first = asyncio.ensure_future(_mutate(http, UPDATE, variables, token))
            await eventually(lambda: _waiting_on_a_lock(settings.database_url), "the first request to wait")
            retry = await _mutate(http, UPDATE, variables, token)
            assert not first.done()
        assert (retry.status_code, _code(retry), retry.headers["retry-after"]) == (409, "IDEMPOTENCY_KEY_IN_USE", "1")
        completed = await asyncio.wait_for(first, 30)
        assert completed.json()["data"]["updateTask"]["task"]["title"] == "Renamed"
        later = await _mutate(http, UPDATE, variables, token)
    assert later.content == completed.content and later.headers["idempotent-replayed"] == "true"


def _global(type_name: str, pk: int) -> str:
    from tests.conftest import global_id

    return global_id(type_name, pk)


_ = (Task, make_user)
