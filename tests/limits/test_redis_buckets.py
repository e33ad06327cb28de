"""The Redis buckets against the real local Redis (database 4): atomic under concurrency, refunds
without round trips of their own, namespaced expiring keys, and what happens when Redis does not
answer (a closed port, and a server that accepts connections but never replies).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from app.settings import Settings
from db.engine import Sessions
from db.models import User
from limits.buckets import MemoryBuckets, Policy
from limits.limiter import Bucket, Limiter, Tiers
from limits.redis_buckets import RedisBuckets
from tests.conftest import serve
from tests.factories import make_task
from tests.limits.conftest import STILL, LimitedApp, seconds_to_restore, tiers
from tests.redis_server import PrivateRedis

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the app needs a database

POLICY = Policy("user", capacity=50, restore_rate=STILL)
CLOSED_PORT = "redis://127.0.0.1:1/0"
TEN = "{ " + " ".join(f"v{i}: viewer {{ id }}" for i in range(10)) + " }"


@contextlib.asynccontextmanager
async def redis_buckets(url: str, **kwargs: Any) -> AsyncIterator[tuple[RedisBuckets, Redis]]:
    redis = Redis.from_url(url)
    buckets = RedisBuckets(redis, **kwargs)
    try:
        yield buckets, redis
    finally:
        await buckets.aclose()
        await redis.aclose()


async def _points(redis: Redis, key: str) -> float:
    stored = await redis.hget(f"tandem:ratelimit:{{{key}}}", "points")
    assert stored is not None
    return float(stored)


async def test_concurrent_charges_never_spend_more_than_the_bucket(limits_redis_url: str) -> None:
    # Two clients (two connection pools, as two processes would have) race 300 charges.
    # A generous timeout: this checks atomicity, and a loaded CI machine must not turn it into a timing test.
    slow = {"timeout": 30.0}
    async with redis_buckets(limits_redis_url, **slow) as (one, _), redis_buckets(limits_redis_url, **slow) as (two, _):
        verdicts = await asyncio.gather(*(
            (one if i % 2 else two).charge("race", 1, POLICY) for i in range(300)
        ))
    assert sum(v.allowed for v in verdicts) == 50
    assert min(v.available for v in verdicts if v.allowed) >= 0


async def test_a_charge_is_all_or_nothing(limits_redis_url: str) -> None:
    async with redis_buckets(limits_redis_url) as (buckets, redis):
        assert (await buckets.charge("k", 45, POLICY)).allowed
        refused = await buckets.charge("k", 10, POLICY)
        assert not refused.allowed
        assert math.floor(refused.available) == 5
        assert refused.retry_after(10) in seconds_to_restore(5)
        assert math.floor(await _points(redis, "k")) == 5


async def test_a_refund_rides_with_the_next_charge(limits_redis_url: str) -> None:
    async with redis_buckets(limits_redis_url, flush_delay=60) as (buckets, redis):
        await buckets.charge("k", 30, POLICY)
        buckets.refund("k", 25, POLICY)
        assert math.floor(await _points(redis, "k")) == 20  # not sent yet: no round trip of its own
        verdict = await buckets.charge("k", 0, POLICY)
        assert math.floor(verdict.available) == 45
        assert math.floor(await _points(redis, "k")) == 45


async def test_waiting_refunds_are_flushed_together(limits_redis_url: str) -> None:
    async with redis_buckets(limits_redis_url, flush_delay=0.05) as (buckets, redis):
        for key in ("a", "b", "c"):
            await buckets.charge(key, 40, POLICY)
            buckets.refund(key, 30, POLICY)
        for _ in range(100):  # the flush is due after 0.05 s
            if math.floor(await _points(redis, "c")) == 40:
                break
            await asyncio.sleep(0.02)
        assert [math.floor(await _points(redis, key)) for key in ("a", "b", "c")] == [40, 40, 40]


async def test_refunds_still_waiting_at_shutdown_are_sent(limits_redis_url: str) -> None:
    async with redis_buckets(limits_redis_url, flush_delay=60) as (buckets, redis):
        await buckets.charge("k", 40, POLICY)
        buckets.refund("k", 40, POLICY)
        await buckets.aclose()
        assert math.floor(await _points(redis, "k")) == 50


async def test_keys_are_namespaced_hash_tagged_and_expire(limits_redis_url: str) -> None:
    policy = Policy("user", capacity=10, restore_rate=1)
    async with redis_buckets(limits_redis_url) as (buckets, redis):
        await buckets.charge("user:7:client:web", 4, policy)
        keys = [key.decode() async for key in redis.scan_iter(match="*")]
        ttl = await redis.pttl("tandem:ratelimit:{user:7:client:web}")
    assert keys == ["tandem:ratelimit:{user:7:client:web}"]
    assert 0 < ttl <= 4_000 + 1_000  # full again after 4 s: then the key is not needed


async def test_redis_and_memory_buckets_agree(limits_redis_url: str) -> None:
    memory = MemoryBuckets()
    async with redis_buckets(limits_redis_url) as (redis_buckets_, _):
        for cost in (20, 20, 20, 5, 0, 9):
            in_redis = await redis_buckets_.charge("same", cost, POLICY)
            in_memory = await memory.charge("same", cost, POLICY)
            assert (in_redis.allowed, math.floor(in_redis.available)) == (
                in_memory.allowed, math.floor(in_memory.available))


# --- Redis configured but not answering ---------------------------------------------------------


def _limiter(buckets: RedisBuckets, *, fail_open: bool, failures: list[int]) -> Limiter:
    return Limiter(buckets, Tiers(POLICY, POLICY, POLICY, POLICY), fail_open=fail_open,
                   on_unavailable=lambda: failures.append(1))


async def test_a_closed_port_fails_open_and_is_counted() -> None:
    failures: list[int] = []
    async with redis_buckets(CLOSED_PORT) as (buckets, _):
        charge = await _limiter(buckets, fail_open=True, failures=failures).charge(Bucket("k", POLICY), 10)
    assert charge.verdict.allowed and not charge.unavailable
    assert failures == [1]


async def test_a_redis_that_never_answers_times_out(unused_tcp_port: int) -> None:
    async def accept_and_stay_silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)
        await asyncio.sleep(30)

    server = await asyncio.start_server(accept_and_stay_silent, "127.0.0.1", unused_tcp_port)
    failures: list[int] = []
    try:
        async with redis_buckets(f"redis://127.0.0.1:{unused_tcp_port}/0", timeout=0.2) as (buckets, _):
            charge = await _limiter(buckets, fail_open=False, failures=failures).charge(Bucket("k", POLICY), 10)
    finally:
        server.close()
    assert not charge.verdict.allowed and charge.unavailable
    assert failures == [1]


@SQLITE_ONLY
async def test_over_http_an_unreachable_redis_fails_open(limited_app: LimitedApp, alice: User) -> None:
    async with limited_app(redis_url=CLOSED_PORT, rate_tiers=tiers(capacity=50)) as limited:
        response = await limited.query(TEN, as_user=alice)
        metrics = (await limited.http.get("/metrics")).text
    assert response.status_code == 200 and "errors" not in response.json()
    assert "tandem_rate_limiter_unavailable_total 1.0" in metrics


@SQLITE_ONLY
async def test_while_redis_is_down_each_instance_enforces_its_share(limited_app: LimitedApp, alice: User) -> None:
    """Failing open is not "no limit": two instances share the Redis, so each admits half the tier."""
    async with limited_app(redis_url=CLOSED_PORT, rate_tiers=tiers(capacity=50), instances=2) as limited:
        answers = [await limited.query(TEN, as_user=alice) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    status = answers[1].json()["extensions"]["cost"]["throttleStatus"]
    assert status["maximumAvailable"] == 25 and status["currentlyAvailable"] == 5  # the share, honestly
    assert answers[2].json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


@SQLITE_ONLY
async def test_redis_back_resumes_the_shared_bucket(settings: Settings, alice: User, token_for: Callable[..., str]) -> None:
    with PrivateRedis() as server:
        configured = settings.model_copy(update={
            "redis_url": server.url, "rate_tiers": tiers(capacity=30), "rate_limit_redis_timeout_seconds": 0.2})
        async with serve(configured) as http:
            headers = {"Authorization": f"Bearer {token_for(alice)}", "Accept": "application/graphql-response+json"}

            async def ask() -> int:
                return (await http.post("/graphql", json={"query": TEN}, headers=headers)).status_code

            assert await ask() == 200
            server.stop()
            assert [await ask() for _ in range(4)] == [200, 200, 200, 429]  # this instance's own 30, spent
            server.start()  # empty: the caller's shared bucket starts full
            await asyncio.sleep(5.2)  # the breaker's cool-down: the next charge probes Redis again
            assert [await ask() for _ in range(4)] == [200, 200, 200, 429]  # Redis's bucket, not the spent one


@SQLITE_ONLY
async def test_over_http_failing_closed_answers_503(limited_app: LimitedApp, alice: User) -> None:
    async with limited_app(redis_url=CLOSED_PORT, rate_limit_fail_open=False) as limited:
        response = await limited.query(TEN, as_user=alice)
        assert limited.resolved == []
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert "Traceback" not in response.text and "127.0.0.1" not in response.text


@SQLITE_ONLY
async def test_over_http_with_redis(limited_app: LimitedApp, alice: User, limits_redis_url: str) -> None:
    async with limited_app(redis_url=limits_redis_url, rate_tiers=tiers(capacity=25)) as limited:
        statuses = [(await limited.query(TEN, as_user=alice)).status_code for _ in range(3)]
        rate_limit = (await limited.query("{ rateLimit { remaining } }", as_user=alice)).json()
    assert statuses == [200, 200, 429]
    assert rate_limit["data"]["rateLimit"] == {"remaining": 5}


@SQLITE_ONLY
async def test_over_http_refunds_reach_redis(
    limited_app: LimitedApp, alice: User, sessions: Sessions, limits_redis_url: str
) -> None:
    await make_task(sessions, alice, "Only one")
    async with limited_app(redis_url=limits_redis_url, rate_tiers=tiers(capacity=200)) as limited:
        asked = (await limited.query("{ tasks(first: 50) { nodes { owner { name } } } }", as_user=alice)).json()
        after = (await limited.query("{ rateLimit { remaining } }", as_user=alice)).json()
    # Charged 101, used 3 (the connection, one task, its owner): 98 come back with the next call.
    assert asked["extensions"]["cost"]["requestedQueryCost"] == 101
    assert asked["extensions"]["cost"]["actualQueryCost"] == 3
    assert asked["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 197
    assert after["data"]["rateLimit"] == {"remaining": 197}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_signed_in_requests_fail_open_when_the_revocation_list_is_unreachable(
    settings: Settings, alice: User, token_for: Callable[..., str]
) -> None:
    down = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    async with serve(down) as http:
        response = await http.post("/graphql", json={"query": "{ viewer { name } }"},
                                   headers={"Authorization": f"Bearer {token_for(alice)}"})
    assert response.json()["data"] == {"viewer": {"name": "Alice"}}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_failing_closed_an_unreachable_redis_is_answered_by_the_database(
    settings: Settings, alice: User, token_for: Callable[..., str]
) -> None:
    down = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0", "revocation_fail_open": False})
    async with serve(down) as http:
        token = token_for(alice)
        kept = await http.post("/graphql", json={"query": "{ viewer { name } }"},
                               headers={"Authorization": f"Bearer {token}"})
        revocations = http._transport.app.state.revocations  # type: ignore[attr-defined]
        claims = http._transport.app.state.tokens.verify(token)  # type: ignore[attr-defined]
        await revocations.revoke_token(claims.token_id, claims.expires_at)  # the database has it
        refused = await http.post("/graphql", json={"query": "{ viewer { name } }"},
                                  headers={"Authorization": f"Bearer {token}"})
    assert kept.status_code == 200 and kept.json()["data"] == {"viewer": {"name": "Alice"}}
    assert refused.status_code == 401