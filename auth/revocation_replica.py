"""This process's copy of the revocation list, kept current over Redis pub/sub, so that checking a
token costs no Redis round trip.

Redis stays the source of truth: a revocation is a key `<prefix>oauth:{revoked}:{jti|sid}:<id>` with a
TTL, written in one MULTI with a message on `channel` that every instance listens to. Keys and
channel share the hash tag `{revoked}`, so on a Redis Cluster they all live on one node: the MULTI
is legal there, the message is sharded pub/sub (SPUBLISH) to that node only, and the replica talks
to that node alone. A replica answers from memory only while it knows it holds everything:

1. SUBSCRIBE (SSUBSCRIBE on a cluster), and wait for Redis to confirm: every revocation published
   from then on reaches us;
2. load the revocations already in Redis (SCAN + PTTL): everything published before step 1;
3. PING on the subscriber connection and wait for the PONG. Redis answers a connection in order, so
   by then every message published before the load ended has been applied: nothing published
   between steps 1 and 2 is missing;
4. keep PINGing: while PONGs come back, the connection still delivers.

A dropped connection, a message that cannot be read, or no PONG for `stale_after_seconds` ends the
trust at once, until steps 1-3 have run again on a new connection. Meanwhile memory still vouches for
what it holds (nothing is ever un-revoked; entries leave only when their TTL runs out), but not for
what it lacks: "not revoked" has to come from Redis, per request. On a cluster a failover or a moved
slot is such a drop: the next attempt connects to whichever node holds the slot then.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger("tandem.auth")

_LOAD_BATCH = 500
_PRUNE_EVERY_SECONDS = 30.0
# Revoked names live under `<prefix>oauth:` + this, in the store and in Redis alike.
REVOKED = "{revoked}:"
_LEGACY = "revoked:"  # releases before the hash tag kept them here; copied over on load


class ReplicaOutOfSync(Exception):
    """The subscription can no longer be trusted to have delivered every revocation."""


class RevocationReplica:
    """Revoked ids (`jti:<id>`, `sid:<id>`) held in memory, each until its Redis key would expire.

    `redis` is the app's client (revocations are written with it); `listen()` opens the subscriber's
    own connection (to the node holding the keys, on a cluster), which must never reconnect by itself:
    redis-py would otherwise resubscribe behind our back, and whatever was published in between would
    be lost without our noticing. `sharded`: a cluster, where the channel is a shard channel.
    """

    def __init__(
        self, redis: Redis | RedisCluster, listen: Callable[[], Awaitable[Redis]], *, sharded: bool = False,
        heartbeat_seconds: float = 0.5, stale_after_seconds: float = 1.5, retry_seconds: float = 0.5,
        prefix: str = "tandem:", replay: Callable[[], Awaitable[list[tuple[str, int]]]] | None = None,
    ) -> None:
        """`replay()`: revocations Redis may have missed (made while it was away), with their seconds
        left; put back into Redis, and announced, each time this replica gets in sync."""
        self.redis = redis
        self.keys = f"{prefix}oauth:{REVOKED}"  # where `RedisStore(redis, prefix)` keeps revocations
        self._legacy_keys = f"{prefix}oauth:{_LEGACY}"
        self.channel = f"{self.keys}news"  # the keys' hash tag: one slot for the MULTI
        self.sharded = sharded
        self._listen = listen
        self._replay = replay
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_after_seconds = stale_after_seconds
        self.retry_seconds = retry_seconds
        self._revoked: dict[str, float] = {}  # name -> time.monotonic() at which its key expires
        self._trusted_until = 0.0  # memory answers until then; every PONG moves it on
        self._task: asyncio.Task[None] | None = None
        # Loops stop on this as well as on cancellation: redis-py's get_message(timeout=...) can turn a
        # cancellation that meets its read timeout into "no message", and the task would carry on.
        self._closing = False
        self._failures = 0  # attempts to get in sync that failed since it last was

    @property
    def in_sync(self) -> bool:
        return time.monotonic() < self._trusted_until

    def lookup(self, names: list[str]) -> bool | None:
        """Whether any of `names` is revoked; None when memory cannot tell (ask Redis instead)."""
        now = time.monotonic()
        if any(self._revoked.get(name, 0.0) > now for name in names):
            return True
        return False if now < self._trusted_until else None

    async def revoke(self, name: str, ttl_seconds: int) -> None:
        """Write the key and announce it in one MULTI: a replica that loads the list sees either both
        or neither, so no revocation falls between its SCAN and its subscription."""
        await self._write(name, ttl_seconds)
        # This instance's next request must not wait for the message to come back round.
        self.remember(name, ttl_seconds)

    async def _write(self, name: str, ttl_seconds: int) -> None:
        ttl = max(1, ttl_seconds)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.keys + name, "1", ex=ttl)
            # Relative TTLs: the instances' clocks need not agree.
            news = json.dumps({"name": name, "ttl": ttl})
            if self.sharded:
                pipe.execute_command("SPUBLISH", self.channel, news)
            else:
                pipe.publish(self.channel, news)
            await pipe.execute()

    async def start(self) -> None:
        """Start following the channel; returns at once (until in sync, callers ask Redis)."""
        if self._task is None:
            self._task = asyncio.create_task(self._follow_forever(), name="tandem-revocation-replica")

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._trusted_until = 0.0

    def remember(self, name: str, ttl_seconds: float) -> None:
        """Known revoked here (memory vouches for what it holds, in sync or not)."""
        expires = time.monotonic() + ttl_seconds
        if expires > self._revoked.get(name, 0.0):
            self._revoked[name] = expires

    async def _follow_forever(self) -> None:
        while not self._closing:
            try:
                await self._follow()
            except (RedisError, OSError, SQLAlchemyError, ReplicaOutOfSync) as exc:
                self._trusted_until = 0.0
                if self._closing:
                    return
                self._failures += 1
                # Once per outage, not every retry: the fallback (EXISTS per request) logs its own failures.
                report = log.warning if self._failures == 1 else log.debug
                report("revocation replica out of sync (%s); checking Redis per request until it resyncs", exc)
            await asyncio.sleep(self.retry_seconds)

    async def _follow(self) -> None:
        listener = await self._listen()
        pubsub = listener.pubsub()
        try:
            if self.sharded:
                await pubsub.ssubscribe(self.channel)
            else:
                await pubsub.subscribe(self.channel)
            await self._read_until(pubsub, "ssubscribe" if self.sharded else "subscribe")
            if self._replay is not None:
                for name, ttl in await self._replay():  # what was revoked while Redis was away
                    await self._write(name, ttl)
            await self._load(listener)  # merged into memory: what we knew stays known
            await pubsub.ping()
            await self._read_until(pubsub, "pong")  # applies what was published during the load
            self._trusted_until = time.monotonic() + self.stale_after_seconds
            self._failures = 0
            log.info("revocation replica in sync: %d revoked ids in memory", len(self._revoked))
            await self._keep_following(pubsub)
        finally:
            with contextlib.suppress(RedisError, OSError):
                close: Any = pubsub.aclose  # typed in some redis-py releases, untyped in others
                await close()
            with contextlib.suppress(RedisError, OSError):
                await listener.aclose()

    async def _keep_following(self, pubsub: PubSub) -> None:
        pinged = last_pong = time.monotonic()
        prune_at = last_pong + _PRUNE_EVERY_SECONDS
        while not self._closing:
            message = await pubsub.get_message(timeout=self.heartbeat_seconds)
            now = time.monotonic()
            if message is not None and self._apply(message) == "pong":
                last_pong = now
                self._trusted_until = now + self.stale_after_seconds
            if now - last_pong > self.stale_after_seconds:
                raise ReplicaOutOfSync(f"no PONG from Redis for {now - last_pong:.1f} s")
            if now - pinged >= self.heartbeat_seconds:
                await pubsub.ping()
                pinged = now
            if now >= prune_at:
                self._revoked = {name: expires for name, expires in self._revoked.items() if expires > now}
                prune_at = now + _PRUNE_EVERY_SECONDS

    async def _read_until(self, pubsub: PubSub, kind: str) -> None:
        deadline = time.monotonic() + max(5.0, self.stale_after_seconds)
        while time.monotonic() < deadline and not self._closing:
            message = await pubsub.get_message(timeout=self.heartbeat_seconds)
            if message is not None and self._apply(message) == kind:
                return
        raise ReplicaOutOfSync(f"Redis did not answer {kind!r} in time")

    def _apply(self, message: dict[str, Any]) -> str:
        """Remember a revocation; returns the message's type."""
        kind = str(message["type"])
        if kind in ("message", "smessage"):
            try:
                body = json.loads(message["data"])
                name, ttl = str(body["name"]), float(body["ttl"])
            except (ValueError, TypeError, KeyError) as exc:
                # Dropping it would mean missing a revocation: reload instead.
                raise ReplicaOutOfSync(f"unreadable revocation message {message['data']!r:.100}") from exc
            self.remember(name, ttl)
        return kind

    async def _load(self, listener: Redis) -> None:
        """Everything under the keys (one node holds them all, on a cluster too); then the keys an
        older release wrote without the hash tag, copied under it (one Redis only: it had no cluster)."""
        await self._scan(listener, self.keys, copy=False)
        if not self.sharded:
            await self._scan(listener, self._legacy_keys, copy=True)

    async def _scan(self, listener: Redis, prefix: str, *, copy: bool) -> None:
        keys: list[bytes] = []
        async for key in listener.scan_iter(match=prefix + "*", count=_LOAD_BATCH):
            keys.append(key)
            if len(keys) >= _LOAD_BATCH:
                await self._load_expiries(listener, prefix, keys, copy)
                keys = []
        await self._load_expiries(listener, prefix, keys, copy)

    async def _load_expiries(self, listener: Redis, prefix: str, keys: list[bytes], copy: bool) -> None:
        if not keys:
            return
        async with listener.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.pttl(key)
            ttls: list[int] = await pipe.execute()
        for key, pttl in zip(keys, ttls, strict=True):
            name = key.decode().removeprefix(prefix)
            if pttl == -1:  # set by hand without an expiry: revoked for as long as this process runs
                self.remember(name, math.inf)
            elif pttl > 0:
                self.remember(name, pttl / 1000)
                if copy:
                    await listener.set(self.keys + name, "1", px=pttl, nx=True)
