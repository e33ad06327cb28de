"""A small expiring key-value store: Redis when configured, this process's memory otherwise.

The authorization server keeps short-lived shared state here: revoked token ids and sessions, browser
sign-in sessions, failed-login counters. With Redis every instance sees the same state; keys live
under `<prefix>oauth:` and each operation touches one key (or checks several with one EXISTS).
"""

from __future__ import annotations

import secrets
import time
from typing import Protocol

from redis.asyncio import Redis, RedisCluster

# Gives a counter back without bringing an expired one to life (DECR alone would make it -1, forever).
_DECR_IF_EXISTS = "if redis.call('exists', KEYS[1]) == 1 then return redis.call('decr', KEYS[1]) end return 0"


class Store(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def put(self, key: str, value: str, ttl_seconds: int) -> None: ...

    async def pop(self, key: str) -> str | None:
        """Get and delete in one step: a value popped by one caller is gone for every other."""

    async def delete(self, key: str) -> None: ...

    async def incr(self, key: str, ttl_seconds: int) -> int:
        """Add one to a counter that starts at zero and expires `ttl_seconds` after its first increment."""

    async def decr(self, key: str) -> None:
        """Take one off an existing counter (keeping its expiry); nothing when it does not exist."""

    async def ttl(self, key: str) -> int:
        """Seconds until `key` expires; 0 when it does not exist."""

    async def any_exists(self, keys: list[str]) -> bool: ...

    async def hit(self, key: str, window_seconds: int) -> tuple[int, float]:
        """Record one hit now in a sliding window: the hits of the last `window_seconds` (this one
        included), and seconds until the oldest of them leaves the window."""


class MemoryStore:
    """For a single process (the default `make run`); expired entries are dropped as they are met."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[str, float]] = {}
        self._windows: dict[str, list[float]] = {}

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

    async def decr(self, key: str) -> None:
        item = self._live(key)
        if item is not None:
            self._items[key] = (str(max(0, int(item[0]) - 1)), item[1])

    async def ttl(self, key: str) -> int:
        item = self._live(key)
        return max(1, int(item[1] - time.monotonic())) if item else 0

    async def any_exists(self, keys: list[str]) -> bool:
        return any(self._live(key) is not None for key in keys)

    async def hit(self, key: str, window_seconds: int) -> tuple[int, float]:
        now = time.monotonic()
        for stale in [k for k, hits in list(self._windows.items())[:64] if hits[-1] <= now - window_seconds]:
            del self._windows[stale]  # bounded sweep, as for the other keys
        hits = [t for t in self._windows.get(key, []) if t > now - window_seconds] + [now]
        self._windows[key] = hits
        return len(hits), hits[0] + window_seconds - now


class RedisStore:
    """Keys under `<TANDEM_REDIS_PREFIX>oauth:`."""

    def __init__(self, redis: Redis | RedisCluster, prefix: str = "tandem:") -> None:
        self.redis = redis
        self.prefix = f"{prefix}oauth:"
        self._decr = redis.register_script(_DECR_IF_EXISTS)

    async def get(self, key: str) -> str | None:
        value = await self.redis.get(self.prefix + key)
        return value.decode() if isinstance(value, bytes) else value

    async def put(self, key: str, value: str, ttl_seconds: int) -> None:
        await self.redis.set(self.prefix + key, value, ex=max(1, ttl_seconds))

    async def pop(self, key: str) -> str | None:
        value = await self.redis.getdel(self.prefix + key)
        return value.decode() if isinstance(value, bytes) else value

    async def delete(self, key: str) -> None:
        await self.redis.delete(self.prefix + key)

    async def incr(self, key: str, ttl_seconds: int) -> int:
        # SET NX starts the window with its expiry; both run in one MULTI, so no counter outlives it.
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.prefix + key, 0, ex=max(1, ttl_seconds), nx=True)
            pipe.incr(self.prefix + key)
            _, count = await pipe.execute()
        return int(count)

    async def decr(self, key: str) -> None:
        await self._decr(keys=[self.prefix + key])

    async def ttl(self, key: str) -> int:
        return max(0, int(await self.redis.ttl(self.prefix + key)))

    async def hit(self, key: str, window_seconds: int) -> tuple[int, float]:
        # A sorted set of hit times; one MULTI, so concurrent hits are all counted. Redis's clock
        # (TIME would need a script): ours is close enough for windows of minutes.
        now = time.time()
        name = self.prefix + key
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(name, "-inf", now - window_seconds)
            pipe.zadd(name, {f"{now}:{secrets.token_hex(4)}": now})
            pipe.zcard(name)
            pipe.zrange(name, 0, 0, withscores=True)
            pipe.expire(name, window_seconds)
            _, _, count, oldest, _ = await pipe.execute()
        first = float(oldest[0][1]) if oldest else now
        return int(count), max(0.0, first + window_seconds - now)

    async def any_exists(self, keys: list[str]) -> bool:
        return bool(keys) and int(await self.redis.exists(*(self.prefix + key for key in keys))) > 0


def make_store(redis: Redis | RedisCluster | None, prefix: str = "tandem:") -> Store:
    return RedisStore(redis, prefix) if redis is not None else MemoryStore()
