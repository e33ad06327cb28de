"""A small expiring key-value store: the protocol, and its Redis implementation.

The authorization server keeps short-lived shared state in one: browser sign-in sessions, attempt
counters, registration windows (`auth/database_store.py`, in the database, so they need no Redis),
and the revocations that every instance follows (`RedisStore`: keys under `<prefix>oauth:`, each
operation on one key, or several of one hash tag checked with one EXISTS).
"""

from __future__ import annotations

import secrets
import time
from typing import Protocol

from redis.asyncio import Redis, RedisCluster

# Gives a counter back without bringing an expired one to life (DECR alone would make it -1, forever).
_DECR_IF_EXISTS = "if redis.call('exists', KEYS[1]) == 1 then return redis.call('decr', KEYS[1]) end return 0"


class Gate(Protocol):
    """A circuit breaker around Redis (limits.breaker.Breaker, shared by every part that asks Redis
    on a request's way): whether to ask now, and how that went."""

    def allow(self) -> bool: ...

    def success(self) -> None: ...

    def failure(self) -> None: ...


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
