"""Publish/subscribe between the parts of Tandem, in one process or across instances.

One interface, two implementations: `MemoryBroker` (one process; the default) and `RedisBroker`
(Redis pub/sub, so that a mutation on instance A reaches subscribers on instance B). Both fan a
message out to this process's subscribers through the same `_Fanout`, where each subscriber has a
bounded queue: publishing never waits for a subscriber, and a subscriber that falls more than
`queue_size` messages behind is cut off with `SubscriberOverflow` (it resyncs from the database)
rather than silently losing messages or slowing everyone else down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError

log = logging.getLogger("tandem.realtime.broker")

DEFAULT_QUEUE_SIZE = 1024
SHARD_POLL_SECONDS = 0.02
MAX_OUTGOING = 10_000
_SEND_BATCH = 256


def raise_swallowed_cancellation() -> None:
    """Raise the cancellation a library swallowed: redis-py 8 answers a command whose reply meets a
    `cancel()` as if nothing happened (the task's `cancelling()` still counts the request). A
    subscriber that carried on would wait for messages forever, and its socket would never end."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Gate(Protocol):
    """A circuit breaker (limits.breaker.Breaker): whether to ask Redis now, and how that went."""

    def allow(self) -> bool: ...

    def success(self) -> None: ...

    def failure(self) -> None: ...


class _Open:
    def allow(self) -> bool:
        return True

    def success(self) -> None:
        return None

    def failure(self) -> None:
        return None


class SubscriberOverflow(Exception):
    """The subscriber did not keep up: `queue_size` messages were waiting when another arrived."""


class Subscription:
    """One subscriber's view of one channel: an async iterator over the messages (bytes)."""

    def __init__(self, channel: str, queue_size: int, release: Any, on_overflow: Any = None) -> None:
        self.channel = channel
        self._on_overflow = on_overflow
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(queue_size)
        self._release = release
        self.overflowed = False
        self._closed = False

    def deliver(self, message: bytes) -> None:
        """Never blocks: a full queue marks the subscriber as overflowed instead."""
        if self.overflowed or self._closed:
            return
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True
            if self._on_overflow is not None:
                self._on_overflow()
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(b"")  # wakes a waiting reader so it sees the overflow

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        raise_swallowed_cancellation()  # before waiting, whatever the caller awaited before
        message = await self._queue.get()
        if self.overflowed:
            raise SubscriberOverflow(f"more than {self._queue.maxsize} messages were waiting")
        return message

    def get_nowait(self) -> bytes | None:
        """The next message if one is waiting (for callers that batch), else None."""
        if self.overflowed:
            raise SubscriberOverflow(f"more than {self._queue.maxsize} messages were waiting")
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._release(self)


class Broker(Protocol):
    async def publish(self, channel: str, message: bytes) -> None:
        """Send `message` to every subscriber of `channel`, in every process sharing this broker."""

    async def subscribe(self, channel: str) -> Subscription:
        """Start receiving `channel`; every message published after this returns is delivered."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def counts(self) -> tuple[int, int, int]:
        """Running totals for metrics: delivered here, subscribers cut off, messages other instances
        never got."""


class _Fanout:
    """This process's subscribers, by channel."""

    def __init__(self, queue_size: int) -> None:
        self.queue_size = queue_size
        self.channels: dict[str, set[Subscription]] = {}
        self.delivered = 0  # messages handed to subscribers here (for metrics)
        self.overflowed = 0  # subscribers cut off for falling behind

    def _count_overflow(self) -> None:
        self.overflowed += 1

    def add(self, channel: str, release: Any) -> tuple[Subscription, bool]:
        """The new subscription, and whether it is the channel's first one here."""
        subscription = Subscription(channel, self.queue_size, release, self._count_overflow)
        subscribers = self.channels.setdefault(channel, set())
        subscribers.add(subscription)
        return subscription, len(subscribers) == 1

    def remove(self, subscription: Subscription) -> bool:
        """Whether that was the channel's last subscriber here."""
        subscribers = self.channels.get(subscription.channel)
        if subscribers is None:
            return False
        subscribers.discard(subscription)
        if subscribers:
            return False
        del self.channels[subscription.channel]
        return True

    def deliver(self, channel: str, message: bytes) -> None:
        subscribers = self.channels.get(channel)
        if subscribers:
            self.delivered += len(subscribers)
            for subscription in list(subscribers):
                subscription.deliver(message)


class MemoryBroker:
    """Pub/sub inside one process (the default when no Redis is configured)."""

    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self._fanout = _Fanout(queue_size)

    async def publish(self, channel: str, message: bytes) -> None:
        self._fanout.deliver(channel, message)

    async def subscribe(self, channel: str) -> Subscription:
        subscription, _ = self._fanout.add(channel, self._release)
        return subscription

    async def _release(self, subscription: Subscription) -> None:
        self._fanout.remove(subscription)

    def counts(self) -> tuple[int, int, int]:
        return self._fanout.delivered, self._fanout.overflowed, 0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisBroker:
    """Redis pub/sub: one connection per process listens, and fans out to local subscribers.

    Channels are prefixed (`tandem:` plus, in tests, a run id), because Redis pub/sub channels are
    shared by every database number on a server.

    On a Redis Cluster (`redis` is a `RedisCluster`) channels are shard channels: SPUBLISH reaches the
    node that holds the channel's slot, and redis-py's cluster pub/sub keeps one connection per node
    with subscribers here, polled in turn (`SHARD_POLL_SECONDS` bounds what that adds to a delivery).

    This process's own subscribers get a message straight away, in process; for the other instances
    it joins a queue that one sender task drains into Redis in pipelined batches (in order), tagged
    with this broker's id so that it is not delivered here twice when it comes back round. So
    `publish` never waits for Redis: a mutation answers as fast with Redis down, hung or slow. The
    sender gives up on a batch after `publish_timeout`, and `gate` (a circuit breaker) stops it asking
    a Redis that keeps failing; other instances miss what was dropped meanwhile (document streams
    repair it from the update log), and so does everyone when more than `max_outgoing` wait.
    """

    def __init__(
        self, redis: Redis | RedisCluster, prefix: str, queue_size: int = DEFAULT_QUEUE_SIZE, *,
        publish_timeout: float = 0.5, listener: Redis | RedisCluster | None = None, gate: Gate | None = None,
        max_outgoing: int = MAX_OUTGOING,
    ) -> None:
        """`listener`: the client whose connection subscribes, when `redis` has a read timeout (an idle
        subscription reads nothing for as long as nothing is published)."""
        self._redis = redis
        self._listener = listener
        self._prefix = prefix
        self._origin = uuid.uuid4().hex.encode()
        self._publish_timeout = publish_timeout
        self._gate = gate or _Open()
        self._outgoing: asyncio.Queue[bytes | tuple[str, bytes]] = asyncio.Queue(max_outgoing)
        self._sender: asyncio.Task[None] | None = None
        self._flushed = asyncio.Event()
        self.dropped = 0  # messages other instances never got (Redis failing, or too many waiting)
        self._outage_logged = False
        self._fanout = _Fanout(queue_size)
        self._sharded = isinstance(redis, RedisCluster)
        self._pubsub = (listener or redis).pubsub()
        self._reader: asyncio.Task[None] | None = None
        self._confirmations: dict[str, list[asyncio.Future[None]]] = {}
        self._lock = asyncio.Lock()

    def _key(self, channel: str) -> str:
        return f"{self._prefix}{channel}"

    @property
    def gate(self) -> Gate:
        return self._gate

    def counts(self) -> tuple[int, int, int]:
        return self._fanout.delivered, self._fanout.overflowed, self.dropped

    async def start(self) -> None:
        # Connects on the first subscription: an app whose Redis is down still starts (and
        # says so on /readyz) instead of failing its lifespan.
        return None

    async def publish(self, channel: str, message: bytes) -> None:
        self._fanout.deliver(channel, message)
        try:
            self._outgoing.put_nowait((self._key(channel), self._origin + b"\n" + message))
        except asyncio.QueueFull:
            self._lost(1, "too many messages waiting for Redis")
        if self._sender is None:
            self._sender = asyncio.create_task(self._send(), name="tandem-redis-publisher")

    async def _send(self) -> None:
        while True:
            batch = [await self._outgoing.get()]
            while len(batch) < _SEND_BATCH and not self._outgoing.empty():
                batch.append(self._outgoing.get_nowait())
            messages = [item for item in batch if isinstance(item, tuple)]
            if messages:
                await self._send_batch(messages)
            for item in batch:
                if not isinstance(item, tuple):  # a flush marker: everything before it is sent
                    self._flushed.set()

    async def _send_batch(self, messages: list[tuple[str, bytes]]) -> None:
        if not self._gate.allow():
            self._lost(len(messages), "Redis failed repeatedly; not asking it for a moment")
            return
        try:
            async with asyncio.timeout(self._publish_timeout):
                pipe = self._redis.pipeline(transaction=False)
                for key, data in messages:
                    if self._sharded:
                        pipe.spublish(key, data)
                    else:
                        pipe.publish(key, data)
                await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            self._gate.failure()
            self._lost(len(messages), f"{type(exc).__name__}: {exc}")
            return
        self._gate.success()
        if self._outage_logged:
            log.info("redis publish works again; %d messages did not reach other instances", self.dropped)
        self._outage_logged = False

    def _lost(self, count: int, why: str) -> None:
        self.dropped += count
        if not self._outage_logged:  # once per outage, not once per event
            log.warning("redis publish failed (%s); local subscribers still get events", why)
            self._outage_logged = True

    async def subscribe(self, channel: str) -> Subscription:
        async with self._lock:
            subscription, first = self._fanout.add(channel, self._release)
            if first:
                try:
                    if self._reader is None and not self._sharded:
                        # A control channel that stays subscribed keeps redis-py listening
                        # while no other channel is.
                        await self._subscribed(self._key("broker"))
                    await self._subscribed(self._key(channel))
                except BaseException:
                    self._fanout.remove(subscription)
                    raise
        return subscription

    async def _subscribed(self, key: str) -> None:
        """SUBSCRIBE, and wait for Redis to confirm it: from then on no message is missed."""
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirmations.setdefault(key, []).append(confirmed)
        if self._sharded:
            await self._pubsub.ssubscribe(key)
        else:
            await self._pubsub.subscribe(key)
        raise_swallowed_cancellation()
        if self._reader is None:
            read = self._read_shards() if self._sharded else self._read()
            self._reader = asyncio.create_task(read, name="tandem-redis-broker")
        # Not `wait_for`: on Python 3.11 it loses a cancellation that meets the confirmation, and the
        # cancelled subscriber would then wait for messages forever (a socket closed 4429 never ended).
        async with asyncio.timeout(10):
            await confirmed

    async def _release(self, subscription: Subscription) -> None:
        async with self._lock:
            if self._fanout.remove(subscription):
                with contextlib.suppress(RedisError, ConnectionError):
                    key = self._key(subscription.channel)
                    await (self._pubsub.sunsubscribe(key) if self._sharded else self._pubsub.unsubscribe(key))

    async def _read(self) -> None:
        while True:
            try:
                async for message in self._pubsub.listen():
                    self._dispatch(message)
                await asyncio.sleep(0.1)  # listen() ends while nothing is subscribed
            except asyncio.CancelledError:
                raise
            except (RedisError, ConnectionError, OSError) as exc:
                # redis-py reconnects and resubscribes on the next read; messages published
                # meanwhile are lost, which the document streams repair from the database.
                log.warning("redis pub/sub connection lost (%s); reconnecting", exc)
                await asyncio.sleep(0.5)

    async def _read_shards(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_sharded_message(timeout=SHARD_POLL_SECONDS)
            except asyncio.CancelledError:
                raise
            except (RedisError, ConnectionError, OSError) as exc:
                # redis-py re-routes shard channels after failovers and moved slots by itself.
                log.warning("redis sharded pub/sub read failed (%s); retrying", exc)
                await asyncio.sleep(0.5)
                continue
            if message is not None:
                self._dispatch(message)
            elif not self._fanout.channels:
                await asyncio.sleep(0.1)  # nothing subscribed: nothing to poll

    def _dispatch(self, message: dict[str, Any]) -> None:
        key = message["channel"].decode() if isinstance(message["channel"], bytes) else str(message["channel"])
        if message["type"] in ("subscribe", "ssubscribe"):
            for confirmed in self._confirmations.pop(key, []):
                if not confirmed.done():
                    confirmed.set_result(None)
        elif message["type"] in ("message", "smessage"):
            origin, _, data = bytes(message["data"]).partition(b"\n")
            if origin != self._origin:  # ours were delivered when published
                self._fanout.deliver(key.removeprefix(self._prefix), data)

    async def close(self) -> None:
        if self._sender is not None:
            # What was published before shutdown still goes out, for as long as Redis answers in time.
            self._flushed = asyncio.Event()
            with contextlib.suppress(asyncio.QueueFull, TimeoutError):
                self._outgoing.put_nowait(b"")
                async with asyncio.timeout(self._publish_timeout * 2):
                    await self._flushed.wait()
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError, ConnectionError):
                await self._reader
        with contextlib.suppress(RedisError, ConnectionError):
            close: Any = self._pubsub.aclose  # typed in some redis-py releases, untyped in others
            await close()
        if self._listener is not None:
            with contextlib.suppress(RedisError, ConnectionError):
                await self._listener.aclose()
