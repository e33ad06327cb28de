"""The revocation list with its in-memory replica, against a private `redis-server` per test: its
command counters show whether a check asked Redis, and it can be stopped, paused and restarted.

Each `RevocationList` here stands for one instance of Tandem (they share only Redis), wired exactly as
`create_app` wires them: a `RedisStore` for the fallback and a `RevocationReplica` following the channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from auth.revocation import RevocationList, RevocationUnavailable
from auth.revocation_replica import RevocationReplica
from auth.store import RedisStore
from auth.tokens import LEEWAY_SECONDS
from tests.redis_server import PrivateRedis

CHANNEL = "tandem:oauth:{revoked}:news"
FAST = {"heartbeat_seconds": 0.05, "stale_after_seconds": 0.5, "retry_seconds": 0.05}
PROMPTLY = 1.0  # seconds: a revocation made at one instance is honoured at the others within this


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    with PrivateRedis() as server:
        yield server


@contextlib.asynccontextmanager
async def instance(server: PrivateRedis, *, fail_open: bool = True, start: bool = True,
                   **timing: float) -> AsyncIterator[RevocationList]:
    """One instance's revocation list, following the channel (started) or not yet."""
    redis = Redis.from_url(server.url)
    replica = RevocationReplica(redis, listener(server), **{**FAST, **timing})
    revocations = RevocationList(RedisStore(redis), access_token_ttl_seconds=900, fail_open=fail_open,
                                 replica=replica)
    if start:
        await revocations.start()
        await until(lambda: replica.in_sync, "the replica to get in sync")
    try:
        yield revocations
    finally:
        await revocations.close()
        await redis.aclose()


async def until(condition: Callable[[], object], what: str, seconds: float = 5.0) -> float:
    """Wait for `condition()`; returns how long it took, fails the test after `seconds`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            pytest.fail(f"waited {seconds} s for {what}")
        await asyncio.sleep(0.005)
    return time.monotonic() - started


def listener(server: PrivateRedis) -> Callable[[], Awaitable[Redis]]:
    """The replica's own connection, as `create_app` opens it: it never retries behind our back."""
    async def listen() -> Redis:
        return Redis.from_url(server.url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=2, socket_timeout=5)

    return listen


def replica_of(revocations: RevocationList) -> RevocationReplica:
    assert revocations.replica is not None
    return revocations.replica


def new_id() -> str:
    return secrets.token_urlsafe(16)


def in_an_hour() -> int:
    return int(time.time()) + 3600


async def test_a_check_in_sync_costs_no_redis_command(redis_server: PrivateRedis) -> None:
    async with instance(redis_server) as revocations:
        revoked, kept, sid = new_id(), new_id(), new_id()
        await revocations.revoke_token(revoked, in_an_hour())
        await revocations.revoke_sessions([sid])
        before = redis_server.calls()
        for _ in range(100):
            assert await revocations.is_revoked(revoked, None) is True
            assert await revocations.is_revoked(kept, sid) is True
            assert await revocations.is_revoked(kept, new_id()) is False
        # Only the replica's heartbeat: not one command per check.
        assert set(redis_server.calls_since(before)) <= {"ping"}


async def test_a_revocation_writes_the_key_and_announces_it_in_one_transaction(redis_server: PrivateRedis) -> None:
    async with instance(redis_server) as revocations:
        before = redis_server.calls()
        jti = new_id()
        await revocations.revoke_token(jti, in_an_hour())
        calls = redis_server.calls_since(before)
        assert {name: calls.get(name) for name in ("multi", "set", "publish", "exec")} == \
            {"multi": 1, "set": 1, "publish": 1, "exec": 1}
        with redis_server.client() as redis:
            assert 3600 < redis.ttl(f"tandem:oauth:{{revoked}}:jti:{jti}") <= 3600 + LEEWAY_SECONDS


async def test_a_revocation_at_another_instance_is_honoured_promptly(redis_server: PrivateRedis) -> None:
    async with instance(redis_server) as here, instance(redis_server) as there:
        jti, sid = new_id(), new_id()
        assert await here.is_revoked(jti, sid) is False
        await there.revoke_token(jti, in_an_hour())
        assert await until(lambda: replica_of(here).lookup([f"jti:{jti}"]), "the token's revocation") < PROMPTLY
        await there.revoke_sessions([sid])
        assert await until(lambda: replica_of(here).lookup([f"sid:{sid}"]), "the session's revocation") < PROMPTLY
        before = redis_server.calls()
        assert await here.is_revoked(jti, None) is True
        assert await here.is_revoked(new_id(), sid) is True
        assert "exists" not in redis_server.calls_since(before)


async def test_a_new_instance_loads_what_was_revoked_before_it_started(redis_server: PrivateRedis) -> None:
    async with instance(redis_server) as early:
        jti, sid = new_id(), new_id()
        await early.revoke_token(jti, in_an_hour())
        await early.revoke_sessions([sid])
        async with instance(redis_server) as late:
            before = redis_server.calls()
            assert await late.is_revoked(jti, None) is True
            assert await late.is_revoked(new_id(), sid) is True
            assert await late.is_revoked(new_id(), new_id()) is False
            assert "exists" not in redis_server.calls_since(before)


async def test_revocations_written_by_an_older_release_are_carried_over(redis_server: PrivateRedis) -> None:
    """Before the `{revoked}` hash tag, revocations lived under `oauth:revoked:`: still honoured."""
    jti = new_id()
    with redis_server.client() as redis:
        redis.set(f"tandem:oauth:revoked:jti:{jti}", "1", ex=600)
    async with instance(redis_server) as upgraded:
        before = redis_server.calls()
        assert await upgraded.is_revoked(jti, None) is True
        assert "exists" not in redis_server.calls_since(before)
    with redis_server.client() as redis:
        assert 590 < redis.ttl(f"tandem:oauth:{{revoked}}:jti:{jti}") <= 600  # copied, with its expiry
    async with instance(redis_server, start=False) as not_following:  # the per-request check sees it too
        assert await not_following.is_revoked(jti, None) is True


async def test_revocations_end_with_their_ttl_in_memory_too(redis_server: PrivateRedis) -> None:
    async with instance(redis_server) as here:
        jti = new_id()
        # Expired a moment ago: remembered only for the verification leeway that is left (1-2 s).
        await here.revoke_token(jti, int(time.time()) - LEEWAY_SECONDS + 2)
        async with instance(redis_server) as loaded:  # learns the TTL from Redis rather than the message
            assert await here.is_revoked(jti, None) is True
            assert await loaded.is_revoked(jti, None) is True
            await asyncio.sleep(2.2)
            before = redis_server.calls()
            assert await here.is_revoked(jti, None) is False
            assert await loaded.is_revoked(jti, None) is False
            assert "exists" not in redis_server.calls_since(before)


async def test_until_in_sync_every_check_asks_redis(redis_server: PrivateRedis) -> None:
    async with instance(redis_server) as other, instance(redis_server, start=False) as unstarted:
        jti = new_id()
        await other.revoke_token(jti, in_an_hour())
        assert replica_of(unstarted).lookup([f"jti:{jti}"]) is None
        before = redis_server.calls()
        assert await unstarted.is_revoked(jti, None) is True
        assert await unstarted.is_revoked(new_id(), None) is False
        assert redis_server.calls_since(before).get("exists") == 2


async def test_a_dropped_subscription_falls_back_to_redis_and_resyncs(redis_server: PrivateRedis) -> None:
    # Slow to retry, so that the revocation below lands while nobody listens.
    async with instance(redis_server, retry_seconds=1.5) as here, instance(redis_server, start=False) as there:
        with redis_server.client() as admin:
            assert admin.client_kill_filter(_type="pubsub") == 1
            await until(lambda: not replica_of(here).in_sync, "the replica to notice", seconds=PROMPTLY)
            jti = new_id()
            await there.revoke_token(jti, in_an_hour())
            assert admin.pubsub_numsub(CHANNEL) == [(CHANNEL.encode(), 0)]  # the message reached no one
        before = redis_server.calls()
        assert await here.is_revoked(jti, None) is True
        assert await here.is_revoked(new_id(), None) is False
        assert redis_server.calls_since(before).get("exists") == 2
        # Back in sync, it has loaded what it missed: memory answers again.
        await until(lambda: replica_of(here).in_sync, "the replica to resync")
        before = redis_server.calls()
        assert await here.is_revoked(jti, None) is True
        assert "exists" not in redis_server.calls_since(before)


@pytest.mark.parametrize("fail_open", [True, False], ids=["fail-open", "fail-closed"])
async def test_redis_down_keeps_the_fail_open_setting(redis_server: PrivateRedis, fail_open: bool) -> None:
    async with instance(redis_server, fail_open=fail_open) as here:
        jti = new_id()
        await here.revoke_token(jti, in_an_hour())
        redis_server.stop()
        await until(lambda: not replica_of(here).in_sync, "the replica to notice", seconds=PROMPTLY)
        # What memory holds stays revoked either way: nothing is ever un-revoked.
        assert await here.is_revoked(jti, None) is True
        # What it lacks cannot be vouched for: the setting decides.
        if fail_open:
            assert await here.is_revoked(new_id(), None) is False
        else:
            with pytest.raises(RevocationUnavailable):
                await here.is_revoked(new_id(), None)
        redis_server.start()  # the same port, empty


async def test_a_hung_redis_costs_a_check_one_short_timeout(redis_server: PrivateRedis) -> None:
    """SIGSTOP: the connection stays open and nothing answers. Once the copy is stale, a check waits
    at most the timeout, then the fail-open setting decides; it never waits for Redis to wake up."""
    async with instance(redis_server) as here:
        here.timeout_seconds = 0.3
        with redis_server.fault("hung"):
            await until(lambda: not replica_of(here).in_sync, "the replica to distrust itself", seconds=PROMPTLY)
            started = time.monotonic()
            assert await here.is_revoked(new_id(), None) is False  # fail open, after the timeout
            assert time.monotonic() - started < 1.0


async def test_after_redis_comes_back_revocations_propagate_again(redis_server: PrivateRedis) -> None:
    async with instance(redis_server) as here, instance(redis_server) as there:
        redis_server.stop()
        await until(lambda: not replica_of(here).in_sync, "the replica to notice", seconds=PROMPTLY)
        redis_server.start()
        await until(lambda: replica_of(here).in_sync and replica_of(there).in_sync, "both replicas to resync")
        jti = new_id()
        await there.revoke_token(jti, in_an_hour())
        await until(lambda: replica_of(here).lookup([f"jti:{jti}"]), "the revocation", seconds=PROMPTLY)


async def test_a_silent_redis_is_not_trusted_for_long(redis_server: PrivateRedis) -> None:
    """A connection that stays open but delivers nothing (a partition, a stalled server) ends the trust
    within `stale_after_seconds`: PONGs stop coming back."""
    async with instance(redis_server) as here:
        with redis_server.client() as admin:
            [subscriber] = admin.client_list(_type="pubsub")
            admin.execute_command("CLIENT", "PAUSE", "2000", "ALL")
            waited = await until(lambda: not replica_of(here).in_sync, "the replica to distrust itself")
            assert waited < PROMPTLY  # stale_after_seconds (0.5) after the last PONG
            assert replica_of(here).lookup([f"jti:{new_id()}"]) is None  # callers ask Redis
            await until(lambda: replica_of(here).in_sync, "the replica to resync after the pause")
            # On a new connection: one that went silent once is not waited on.
            assert [client["id"] for client in admin.client_list(_type="pubsub")] != [subscriber["id"]]


async def test_an_unreadable_message_forces_a_reload(redis_server: PrivateRedis) -> None:
    async with instance(redis_server, retry_seconds=1.0) as here:
        with redis_server.client() as admin:
            admin.publish(CHANNEL, b"not a revocation")
        await until(lambda: not replica_of(here).in_sync, "the replica to drop its trust", seconds=PROMPTLY)
        await until(lambda: replica_of(here).in_sync, "the replica to reload")


async def test_closing_stops_the_replica_even_mid_read(redis_server: PrivateRedis) -> None:
    """A cancellation that meets get_message's read timeout comes back from redis-py as "no message";
    the replica must stop anyway, or the app's shutdown waits for it forever."""
    redis = Redis.from_url(redis_server.url)
    try:
        for attempt in range(50):
            # Reads that time out every 2 ms, so that the cancellation often lands on one.
            replica = RevocationReplica(redis, listener(redis_server), heartbeat_seconds=0.002)
            await replica.start()
            await asyncio.sleep(0.01 + attempt % 5 * 0.005)
            try:
                async with asyncio.timeout(2):
                    await replica.close()
            except TimeoutError:
                pytest.fail(f"close() did not return (attempt {attempt})")
            assert replica.lookup([f"jti:{new_id()}"]) is None
    finally:
        await redis.aclose()
