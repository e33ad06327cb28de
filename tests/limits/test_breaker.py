"""The rate limiter's circuit breaker, on a private redis-server that is SIGSTOPped: a hung Redis costs
a few short timeouts, not one per request; after the cool-down one probe goes through, and once Redis
answers again charges go to it."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from limits.breaker import Breaker
from limits.buckets import BucketsUnavailable, Policy
from limits.redis_buckets import RedisBuckets
from tests.redis_server import PrivateRedis

POLICY = Policy("user", 100, 1.0)


def test_the_breaker_opens_after_the_threshold_and_probes_once_after_the_cool_down() -> None:
    now = [0.0]
    breaker = Breaker(threshold=2, cooldown=5, clock=lambda: now[0])
    breaker.failure()
    assert breaker.allow() and breaker.state == "closed"
    breaker.failure()
    assert not breaker.allow() and breaker.state == "open"
    now[0] = 5.0
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # and nobody else meanwhile
    breaker.failure()  # the probe failed: open again
    assert not breaker.allow()
    now[0] = 10.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()


async def _charges(buckets: RedisBuckets, count: int) -> tuple[int, float]:
    """How many of `count` charges Redis answered, and how long they took together."""
    answered, started = 0, time.monotonic()
    for n in range(count):
        try:
            await buckets.charge(f"user:{n % 3}", 1, POLICY)
            answered += 1
        except BucketsUnavailable:
            pass
    return answered, time.monotonic() - started


async def test_a_hung_redis_costs_the_limiter_a_few_timeouts_not_one_per_request() -> None:
    with PrivateRedis() as server:
        redis = Redis.from_url(server.url)
        buckets = RedisBuckets(redis, timeout=0.2, breaker=Breaker(threshold=3, cooldown=0.6))
        try:
            assert (await _charges(buckets, 3))[0] == 3
            with server.fault("hung"):
                answered, took = await _charges(buckets, 50)
                assert answered == 0
                assert took < 1.0  # three timeouts of 0.2 s, then refusals at once (50 timeouts: 10 s)
                assert buckets.breaker.state == "open"
            await asyncio.sleep(0.7)  # the cool-down passes
            answered, _ = await _charges(buckets, 5)
            assert answered == 5 and buckets.breaker.state == "closed"
        finally:
            await redis.aclose()
