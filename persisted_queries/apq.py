"""Where automatic persisted queries (APQ) are registered: in process, or shared through Redis.

Anyone may register a query (that is the protocol), so the store is bounded: each query at most
`max_query_bytes` (checked before anything is stored) and at most `max_entries` of them, the least
recently used going first. Registrations are content-addressed (the key is the SHA-256 of the
text, verified before `put`), so a shared store can never hand one client another's text under a
hash that does not match it.

Redis keeps the queries in one hash and their last use in a sorted set, both under one hash tag
(`{apq}`) so the Lua scripts touch a single Cluster slot. A use's score is the next value of a counter
kept with them, not the time: uses within one millisecond (or on hosts with clocks apart) stay in
order. A Redis that is down degrades to "not
found": clients then send the full query, which still runs.
"""

from __future__ import annotations

import logging
from typing import Protocol

from cachetools import LRUCache
from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError

log = logging.getLogger("tandem.persisted_queries")


class APQStore(Protocol):
    async def get(self, sha256: str) -> str | None: ...

    async def put(self, sha256: str, query: str) -> bool:
        """Store `query` under its (already verified) hash; False if it could not be stored."""
        ...


class MemoryAPQStore:
    def __init__(self, max_entries: int) -> None:
        self._queries: LRUCache[str, str] = LRUCache(maxsize=max_entries)

    async def get(self, sha256: str) -> str | None:
        return self._queries.get(sha256)  # a hit moves the entry to the young end

    async def put(self, sha256: str, query: str) -> bool:
        self._queries[sha256] = query
        return True

    def __len__(self) -> int:
        return len(self._queries)


# KEYS: queries (hash), last use (zset), use counter. ARGV: sha256, query, max entries.
_PUT = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1])
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if excess > 0 then
  local evicted = redis.call('ZPOPMIN', KEYS[2], excess)
  for i = 1, #evicted, 2 do redis.call('HDEL', KEYS[1], evicted[i]) end
end
return excess
"""

# KEYS: queries (hash), last use (zset), use counter. ARGV: sha256.
_GET = """
local query = redis.call('HGET', KEYS[1], ARGV[1])
if query then redis.call('ZADD', KEYS[2], 'XX', redis.call('INCR', KEYS[3]), ARGV[1]) end
return query
"""


class RedisAPQStore:
    def __init__(self, redis: Redis | RedisCluster, max_entries: int, *, prefix: str = "tandem:{apq}") -> None:
        self.redis = redis
        self.max_entries = max_entries
        self.keys = [f"{prefix}:queries", f"{prefix}:last-use", f"{prefix}:uses"]
        self._put = redis.register_script(_PUT)
        self._get = redis.register_script(_GET)

    async def get(self, sha256: str) -> str | None:
        try:
            found = await self._get(keys=self.keys, args=[sha256])
        except RedisError as exc:
            log.warning("APQ lookup failed, answering not found: %s", exc)
            return None
        if found is None:
            return None
        return found.decode() if isinstance(found, bytes) else str(found)

    async def put(self, sha256: str, query: str) -> bool:
        try:
            await self._put(keys=self.keys, args=[sha256, query, self.max_entries])
        except RedisError as exc:
            log.warning("APQ registration failed, the query ran unregistered: %s", exc)
            return False
        return True
