"""Counted WebSocket connections per user and per address, and cool-downs, shared by all instances.

A connection holds a *slot* in each scope it counts against (`user:42`, `ip:203.0.113.7`). A slot is
a lease: it lapses `lease_seconds` after it was taken or last renewed, so the slots of an instance
that died without closing its sockets free themselves. The WebSocket layer renews its connections'
slots while they live (on each keep-alive ping, say) and releases them on close.

In Redis each scope is a sorted set `<prefix>ws:slots:{<scope>}` (connection id → lease end, by
Redis's clock), taken by one Lua script per scope; a cool-down is a key
`<prefix>ws:cooldown:{<scope>}` that expires (the prefix: `TANDEM_REDIS_PREFIX`). In memory, the same with dicts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any, Protocol

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError

# KEYS[1]: the scope's sorted set. ARGV: connection id, limit, lease (ms). 1 when the slot is held.
_TAKE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""


class SlotsUnavailable(Exception):
    """Redis did not answer; the caller lets the connection in (as the HTTP limiter fails open)."""


class ConnectionSlots(Protocol):
    async def take(self, scope: str, connection_id: str, limit: int, lease_seconds: float) -> bool:
        """Hold (or renew) a slot in `scope`; False when `limit` others hold one."""
        ...

    async def release(self, scope: str, connection_id: str) -> None: ...

    async def cool_down(self, scope: str, seconds: float) -> None:
        """Refuse `scope` for `seconds`."""
        ...

    async def cooling(self, scope: str) -> float:
        """Seconds left of `scope`'s cool-down (0 when there is none)."""
        ...


class MemorySlots:
    def __init__(self) -> None:
        self._slots: dict[str, dict[str, float]] = {}  # scope -> connection id -> lease end
        self._cool_downs: dict[str, float] = {}

    async def take(self, scope: str, connection_id: str, limit: int, lease_seconds: float) -> bool:
        now = time.monotonic()
        held = self._slots.setdefault(scope, {})
        if connection_id not in held and len(held) >= limit:
            # Lapsed leases are dropped only when they could be in the way: a scope with thousands of
            # sockets (one address behind a proxy) must not cost a scan per new socket.
            for lapsed in [cid for cid, end in held.items() if end <= now]:
                del held[lapsed]
            if len(held) >= limit:
                return False
        held[connection_id] = now + lease_seconds
        return True

    async def release(self, scope: str, connection_id: str) -> None:
        held = self._slots.get(scope, {})
        held.pop(connection_id, None)
        if not held:
            self._slots.pop(scope, None)

    async def cool_down(self, scope: str, seconds: float) -> None:
        self._cool_downs[scope] = time.monotonic() + seconds

    async def cooling(self, scope: str) -> float:
        left = self._cool_downs.get(scope, 0.0) - time.monotonic()
        if left <= 0:
            self._cool_downs.pop(scope, None)
            return 0.0
        return left


class RedisSlots:
    def __init__(self, redis: Redis | RedisCluster, *, timeout: float = 0.5, prefix: str = "tandem:") -> None:
        self._redis = redis
        self._slots_prefix = f"{prefix}ws:slots:"
        self._cool_down_prefix = f"{prefix}ws:cooldown:"
        self._take = redis.register_script(_TAKE)
        self._timeout = timeout

    async def take(self, scope: str, connection_id: str, limit: int, lease_seconds: float) -> bool:
        result = await self._call(self._take(keys=[_key(self._slots_prefix, scope)],
                                             args=[connection_id, limit, int(lease_seconds * 1000)]))
        return bool(result)

    async def release(self, scope: str, connection_id: str) -> None:
        await self._call(self._redis.zrem(_key(self._slots_prefix, scope), connection_id))

    async def cool_down(self, scope: str, seconds: float) -> None:
        await self._call(self._redis.set(_key(self._cool_down_prefix, scope), 1, px=max(1, int(seconds * 1000))))

    async def cooling(self, scope: str) -> float:
        left = await self._call(self._redis.pttl(_key(self._cool_down_prefix, scope)))
        return max(0, int(left)) / 1000

    async def _call(self, command: Awaitable[Any]) -> Any:
        try:
            async with asyncio.timeout(self._timeout):
                return await command
        except (RedisError, OSError, TimeoutError) as exc:
            raise SlotsUnavailable(f"{type(exc).__name__}: {exc}") from exc


def _key(prefix: str, scope: str) -> str:
    return f"{prefix}{{{scope}}}"
