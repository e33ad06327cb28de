"""When each trusted document was last used, for `tandem pq list`.

Before an operator drops an operation from a manifest (or changes the schema under it) they want
to know whether any installed app still sends it. Only trusted documents are recorded: their
number is bounded by the manifests, unlike APQ registrations. With Redis every instance writes to
one hash (at most once a minute per operation and process, so a hot operation costs one write a
minute, not one per request); without Redis the times live in the process and die with it.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError

log = logging.getLogger("tandem.persisted_queries")

WRITE_EVERY_SECONDS = 60.0


class UsageLog(Protocol):
    async def record(self, sha256: str) -> None: ...

    async def last_used(self) -> dict[str, float]:
        """Unix time of the last use, by document hash."""
        ...


class MemoryUsageLog:
    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    async def record(self, sha256: str) -> None:
        self._seen[sha256] = time.time()

    async def last_used(self) -> dict[str, float]:
        return dict(self._seen)


def usage_key(prefix: str = "tandem:") -> str:
    """Where last uses are kept in Redis, under the deployment's `TANDEM_REDIS_PREFIX`."""
    return f"{prefix}{{pq}}:last-use"


class RedisUsageLog:
    def __init__(self, redis: Redis | RedisCluster, *, key: str = usage_key()) -> None:
        self.redis = redis
        self.key = key
        self._written: dict[str, float] = {}

    async def record(self, sha256: str) -> None:
        now = time.time()
        if now - self._written.get(sha256, 0.0) < WRITE_EVERY_SECONDS:
            return
        self._written[sha256] = now
        try:
            await self.redis.hset(self.key, sha256, str(now))
        except RedisError as exc:
            log.warning("could not record the use of a trusted document: %s", exc)

    async def last_used(self) -> dict[str, float]:
        found = await self.redis.hgetall(self.key)
        return {_text(key): float(_text(value)) for key, value in found.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
