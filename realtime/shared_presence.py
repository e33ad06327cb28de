"""Who watches a document across every instance, in Redis, so that a user connected to two instances
is announced JOINED once and LEFT only when their last subscription anywhere ends.

Each document is one hash, `<prefix>presence:{<document id>}`: a field per (user, instance) that
watches it, `<user id>:<instance id>`, holding the end of its lease (milliseconds, Redis's clock).
An instance joins a field when its first local subscription of that user opens, leaves it when its
last closes, and renews its fields' leases while they live; the fields of an instance that died lapse.
Each operation is one Lua script on one key (one slot on a Redis Cluster). Without Redis the hub's
`Presence` alone decides, per process.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError

# Live fields are counted, lapsed ones dropped, on every call. KEYS[1]: the document's hash.
_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function others(user, mine)
  local count = 0
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    if tonumber(all[i + 1]) <= now then
      redis.call('HDEL', KEYS[1], all[i])
    elseif string.sub(all[i], 1, #user + 1) == user .. ':' and all[i] ~= mine then
      count = count + 1
    end
  end
  return count
end
"""
# ARGV: user, instance, lease (ms). 1 when the user was present on no other instance.
_JOIN = _NOW + """
local mine = ARGV[1] .. ':' .. ARGV[2]
local alone = others(ARGV[1], mine) == 0
redis.call('HSET', KEYS[1], mine, now + tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
if alone then return 1 end
return 0
"""
# ARGV: user, instance. 1 when the user is now present on no instance.
_LEAVE = _NOW + """
local mine = ARGV[1] .. ':' .. ARGV[2]
redis.call('HDEL', KEYS[1], mine)
if others(ARGV[1], mine) == 0 then return 1 end
return 0
"""
# The users with a live field.
_PRESENT = _NOW + """
others('', '')
local users = {}
local all = redis.call('HKEYS', KEYS[1])
for i = 1, #all do users[#users + 1] = string.match(all[i], '^(%d+):') end
return users
"""


class SharedPresence:
    def __init__(self, redis: Redis | RedisCluster, prefix: str, *, lease_seconds: float = 30.0,
                 timeout: float = 0.5) -> None:
        self._redis = redis
        self._prefix = f"{prefix}presence:"
        self.instance = uuid.uuid4().hex[:12]
        self.lease_ms = int(lease_seconds * 1000)
        self._timeout = timeout
        self._join = redis.register_script(_JOIN)
        self._leave = redis.register_script(_LEAVE)
        self._present = redis.register_script(_PRESENT)

    def _key(self, document_id: int) -> str:
        return f"{self._prefix}{{{document_id}}}"

    async def join(self, document_id: int, user_id: int) -> bool:
        """This instance now watches; True when the user was present on no other instance."""
        return bool(await self._call(self._join(keys=[self._key(document_id)],
                                                args=[user_id, self.instance, self.lease_ms])))

    async def leave(self, document_id: int, user_id: int) -> bool:
        """This instance no longer watches; True when the user is present on no instance now."""
        return bool(await self._call(self._leave(keys=[self._key(document_id)], args=[user_id, self.instance])))

    async def renew(self, watched: list[tuple[int, int]]) -> None:
        """Extend the leases of what this instance watches (the hub's sweeper calls it)."""
        for document_id, user_id in watched:
            await self.join(document_id, user_id)

    async def present(self, document_id: int) -> list[int]:
        found = await self._call(self._present(keys=[self._key(document_id)]))
        return sorted({int(user) for user in found or []})

    async def _call(self, command: Awaitable[Any]) -> Any:
        try:
            async with asyncio.timeout(self._timeout):
                return await command
        except (RedisError, OSError, TimeoutError) as exc:
            raise PresenceUnavailable(str(exc)) from exc


class PresenceUnavailable(Exception):
    """Redis did not answer: the hub decides from this instance's subscriptions alone."""
