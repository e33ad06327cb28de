"""The expiring store behind revocation, sign-in sessions and login limits: memory and Redis alike."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from auth.store import PREFIX, MemoryStore, RedisStore, Store


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
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


async def test_redis_keys_are_namespaced(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        await RedisStore(redis).put("test:b", "x", 60)
        assert await redis.get(PREFIX + "test:b") == b"x"
        assert PREFIX.startswith("tandem:")
    finally:
        await redis.aclose()
