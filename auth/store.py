"""A small expiring key-value store: Redis when configured, this process's memory otherwise.

The authorization server keeps short-lived shared state here: revoked token ids and sessions, browser
sign-in sessions, failed-login counters. With Redis every instance sees the same state; keys live
under `tandem:oauth:` and each operation touches one key (or checks several with one EXISTS).
"""

from __future__ import annotations

import time
from typing import Protocol

from redis.asyncio import Redis

PREFIX = "tandem:oauth:"


class Store(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def put(self, key: str, value: str, ttl_seconds: int) -> None: ...

    async def pop(self, key: str) -> str | None:
        """Get and delete in one step: a value popped by one caller is gone for every other."""

    async def delete(self, key: str) -> None: ...

    async def incr(self, key: str, ttl_seconds: int) -> int:
        """Add one to a counter that starts at zero and expires `ttl_seconds` after its first increment."""

    async def ttl(self, key: str) -> int:
        """Seconds until `key` expires; 0 when it does not exist."""

    async def any_exists(self, keys: list[str]) -> bool: ...


class MemoryStore:
    """For a single process (the default `make run`); expired entries are dropped as they are met."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[str, float]] = {}

    def _live(self, key: str) -> tuple[str, float] | None:
        item = self._items.get(key)
        if item is not None and item[1] <= time.monotonic():
            del self._items[key]
            return None
        return item

    def _sweep(self) -> None:
        # Bounded work per write keeps the dict from growing with keys nobody reads again.
        now = time.monotonic()
        for key in [k for k, (_, expires) in list(self._items.items())[:64] if expires <= now]:
            del self._items[key]

    async def get(self, key: str) -> str | None:
        item = self._live(key)
        return item[0] if item else None

    async def put(self, key: str, value: str, ttl_seconds: int) -> None:
        self._sweep()
        self._items[key] = (value, time.monotonic() + max(1, ttl_seconds))

    async def pop(self, key: str) -> str | None:
        item = self._live(key)
        self._items.pop(key, None)
        return item[0] if item else None

    async def delete(self, key: str) -> None:
        self._items.pop(key, None)

    async def incr(self, key: str, ttl_seconds: int) -> int:
        item = self._live(key)
        if item is None:
            self._sweep()
            item = ("0", time.monotonic() + max(1, ttl_seconds))
        count = int(item[0]) + 1
        self._items[key] = (str(count), item[1])
        return count

    async def ttl(self, key: str) -> int:
        item = self._live(key)
        return max(1, int(item[1] - time.monotonic())) if item else 0

    async def any_exists(self, keys: list[str]) -> bool:
        return any(self._live(key) is not None for key in keys)


class RedisStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def get(self, key: str) -> str | None:
        value = await self.redis.get(PREFIX + key)
        return value.decode() if isinstance(value, bytes) else value

    async def put(self, key: str, value: str, ttl_seconds: int) -> None:
        await self.redis.set(PREFIX + key, value, ex=max(1, ttl_seconds))

    async def pop(self, key: str) -> str | None:
        value = await self.redis.getdel(PREFIX + key)
        return value.decode() if isinstance(value, bytes) else value

    async def delete(self, key: str) -> None:
        await self.redis.delete(PREFIX + key)

    async def incr(self, key: str, ttl_seconds: int) -> int:
        # SET NX starts the window with its expiry; both run in one MULTI, so no counter outlives it.
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(PREFIX + key, 0, ex=max(1, ttl_seconds), nx=True)
            pipe.incr(PREFIX + key)
            _, count = await pipe.execute()
        return int(count)

    async def ttl(self, key: str) -> int:
        return max(0, int(await self.redis.ttl(PREFIX + key)))

    async def any_exists(self, keys: list[str]) -> bool:
        return bool(keys) and int(await self.redis.exists(*(PREFIX + key for key in keys))) > 0


def make_store(redis: Redis | None) -> Store:
    return RedisStore(redis) if redis is not None else MemoryStore()
