"""The expiring store behind sign-in sessions, attempt limits and revocation: the database (SQLite and
PostgreSQL) and Redis alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from auth.database_store import DatabaseStore
from auth.store import RedisStore, Store
from db.engine import Sessions


@pytest.fixture(params=["database", "redis"])
async def store(request: pytest.FixtureRequest, redis_url: str, sessions: Sessions) -> AsyncIterator[Store]:
    if request.param == "database":
        yield DatabaseStore(sessions)
        return
    redis = Redis.from_url(redis_url)
    yield RedisStore(redis)
    await redis.aclose()


async def test_values_expire_and_pop_once(store: Store) -> None:
    await store.put("test:a", "1", 60)
    assert await store.get("test:a") == "1"
    assert 0 < await store.ttl("test:a") <= 60
    assert await store.any_exists(["test:missing", "test:a"]) is True
    assert await store.pop("test:a") == "1"
    assert await store.pop("test:a") is None
    assert await store.any_exists(["test:a"]) is False
    assert await store.ttl("test:a") == 0


async def test_counters_start_a_window_on_first_increment(store: Store) -> None:
    assert [await store.incr("test:count", 60) for _ in range(3)] == [1, 2, 3]
    assert 0 < await store.ttl("test:count") <= 60
    await store.delete("test:count")
    assert await store.incr("test:count", 60) == 1


async def test_counters_are_given_back_but_never_brought_back_to_life(store: Store) -> None:
    await store.decr("test:gone")  # nothing to give back to: no counter appears
    assert await store.ttl("test:gone") == 0 and await store.get("test:gone") is None
    assert [await store.incr("test:back", 60) for _ in range(3)] == [1, 2, 3]
    await store.decr("test:back")
    assert await store.incr("test:back", 60) == 3
    assert 0 < await store.ttl("test:back") <= 60


async def test_sliding_windows_count_recent_hits(store: Store) -> None:
    counts = [(await store.hit("test:window", 60))[0] for _ in range(4)]
    assert counts == [1, 2, 3, 4]
    count, oldest_leaves_in = await store.hit("test:window", 60)
    assert count == 5 and 59 < oldest_leaves_in <= 60
    assert (await store.hit("test:window-short", 1))[0] == 1
    await asyncio.sleep(1.1)
    assert (await store.hit("test:window-short", 1))[0] == 1  # the first hit left the window


async def test_redis_keys_are_namespaced(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        await RedisStore(redis).put("test:b", "x", 60)
        assert await redis.get("tandem:oauth:test:b") == b"x"
        await RedisStore(redis, "kitbar:").put("test:b", "y", 60)
        assert await redis.get("kitbar:oauth:test:b") == b"y"
        await redis.delete("kitbar:oauth:test:b")
    finally:
        await redis.aclose()
