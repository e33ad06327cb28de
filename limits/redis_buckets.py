"""Token buckets in Redis, shared by every server process: one Lua script call per charge.

The script reads the bucket, refills it by the time elapsed (Redis's own clock, so the servers'
clocks never matter), applies a pending refund, takes the cost if it is there, writes the bucket
back and sets it to expire once it would be full anyway. Redis runs a script atomically, so no two
charges can both spend the same points. It touches one key, `<prefix>ratelimit:{<bucket>}`, whose
hash tag keeps the same code valid on Redis Cluster.

Refunds need no round trip of their own: a refund waits in this process and rides along with the
key's next charge; refunds that have waited `flush_delay` seconds without one go out together in
one pipeline. Until then the bucket holds fewer points than it will, which can only refuse early,
never admit too much. A caller that keeps sending requests therefore costs one round trip each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError

from limits.breaker import Breaker
from limits.buckets import BucketsUnavailable, Policy, Verdict

log = logging.getLogger("tandem.limits")

# KEYS[1]: the bucket (hash: points, at). ARGV: capacity, restore rate (points/s), cost, refund.
# Returns {1 if charged else 0, points left as a string} (Lua numbers would be truncated to integers).
CHARGE = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local refund = tonumber(ARGV[4])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local stored = redis.call('HMGET', KEYS[1], 'points', 'at')
local points = tonumber(stored[1])
local at = tonumber(stored[2])
if points == nil or at == nil then
  points = capacity
  at = now
end
points = math.min(capacity, points + math.max(0, now - at) * rate + refund)
local charged = 0
if cost <= points then
  points = points - cost
  charged = 1
end
local text = string.format('%.6f', points)
redis.call('HSET', KEYS[1], 'points', text, 'at', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - points) / rate * 1000) + 1000)
return {charged, text}
"""


class RedisBuckets:
    """`max_in_flight` bounds the calls waiting on Redis at once: redis-py's pool refuses (rather than
    queues) a call past its 100 connections, which would fail open exactly when load peaks. Waiting
    for a turn counts towards `timeout`."""

    def __init__(
        self, redis: Redis | RedisCluster, *, timeout: float = 0.5, flush_delay: float = 0.1, max_in_flight: int = 32,
        prefix: str = "tandem:", breaker: Breaker | None = None,
        on_latency: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self._redis = redis
        self.breaker = breaker or Breaker()
        self._key_prefix = f"{prefix}ratelimit:"
        self._script = redis.register_script(CHARGE)
        self._timeout = timeout
        self._on_latency = on_latency  # how long each answered charge took (metrics)
        self._flush_delay = flush_delay
        self._turns = asyncio.Semaphore(max_in_flight)
        self._pending: dict[str, tuple[int, Policy, float]] = {}  # key -> (points, policy, waiting since)
        self._flusher: asyncio.Task[None] | None = None

    async def charge(self, key: str, cost: int, policy: Policy) -> Verdict:
        refund, _, _ = self._pending.pop(key, (0, policy, 0.0))
        if not self.breaker.allow():
            raise BucketsUnavailable("Redis failed repeatedly; not asking it again for a moment")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout), self._turns:
                charged, points = await self._script(
                    keys=[self._key(key)], args=[policy.capacity, policy.restore_rate, cost, refund]
                )
        except (RedisError, OSError, TimeoutError) as exc:
            # The refund is dropped with the call: whether Redis applied it is unknown, and
            # losing it can only make the limiter stricter.
            self.breaker.failure()
            raise BucketsUnavailable(f"{type(exc).__name__}: {exc}") from exc
        self.breaker.success()
        self._on_latency(time.perf_counter() - started)
        return Verdict(bool(charged), float(points), policy)

    def refund(self, key: str, amount: int, policy: Policy) -> None:
        if amount <= 0:
            return
        waiting, _, since = self._pending.get(key, (0, policy, time.monotonic()))
        self._pending[key] = (waiting + amount, policy, since)
        self._schedule_flush()

    async def aclose(self) -> None:
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()

    async def flush(self, older_than: float | None = None) -> None:
        """Send waiting refunds (those waiting since before `older_than`, or all) in one pipeline."""
        pending = {key: entry for key, entry in self._pending.items() if older_than is None or entry[2] <= older_than}
        for key in pending:
            del self._pending[key]
        if not pending:
            return
        pipe = self._redis.pipeline(transaction=False)
        for key, (amount, policy, _) in pending.items():
            await self._script(keys=[self._key(key)], args=[policy.capacity, policy.restore_rate, 0, amount],
                               client=pipe)  # type: ignore[arg-type]  # a pipeline is a client at run time
        try:
            async with asyncio.timeout(self._timeout), self._turns:
                await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("rate-limit refunds for %d buckets were lost: %s", len(pending), exc)

    def _schedule_flush(self) -> None:
        if self._pending and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._flush_delay)
        await self.flush(older_than=time.monotonic() - self._flush_delay)
        self._flusher = None
        self._schedule_flush()  # refunds that were folded meanwhile are gone; later ones wait their turn

    def _key(self, key: str) -> str:
        return f"{self._key_prefix}{{{key}}}"
