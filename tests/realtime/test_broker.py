"""The broker: in-process and Redis, bounded per-subscriber queues, and a slow socket cut off with 1013."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import Callable

import httpx
import pytest
from pycrdt import Doc, Text
from redis.asyncio import Redis
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from app.main import create_app
from app.settings import Settings
from db.models import User
from realtime.broker import MemoryBroker, RedisBroker, SubscriberOverflow
from tests.conftest import global_id
from tests.factories import make_document
from tests.live_server import LiveServer
from tests.realtime.conftest import REDIS_TEST_URL, TRANSPORT_WS, post_gql, redis_prefix, require_redis


async def test_memory_broker_fans_out_and_cuts_off_a_slow_subscriber() -> None:
    broker = MemoryBroker(queue_size=3)
    fast, slow = await broker.subscribe("c"), await broker.subscribe("c")
    for n in range(4):
        await broker.publish("c", f"{n}".encode())
        assert await fast.__anext__() == f"{n}".encode()  # the fast one keeps up
    assert slow.overflowed
    with pytest.raises(SubscriberOverflow):
        await slow.__anext__()
    await slow.close()
    await broker.publish("c", b"after")
    assert await fast.__anext__() == b"after"
    await fast.close()


async def test_redis_broker_reaches_another_instance() -> None:
    require_redis()
    prefix = redis_prefix()
    first, second = Redis.from_url(REDIS_TEST_URL), Redis.from_url(REDIS_TEST_URL)
    a, b = RedisBroker(first, prefix), RedisBroker(second, prefix)
    other = RedisBroker(first, redis_prefix())  # another namespace hears nothing
    try:
        on_b = await b.subscribe("document:1")
        on_a = await a.subscribe("document:1")
        elsewhere = await other.subscribe("document:1")
        await a.publish("document:1", b"hello")
        assert await asyncio.wait_for(on_b.__anext__(), 5) == b"hello"
        assert on_a.get_nowait() == b"hello"  # delivered in process at once...
        await b.publish("document:1", b"from b")  # ...and not again when it comes back from Redis
        assert await asyncio.wait_for(on_a.__anext__(), 5) == b"from b"
        assert on_a.pending == 0
        assert elsewhere.pending == 0
        for subscription in (on_a, on_b, elsewhere):
            await subscription.close()
    finally:
        for broker in (a, b, other):
            await broker.close()
        await first.aclose()
        await second.aclose()


class StalledClient:
    """A WebSocket client (websockets' sans-I/O protocol over a plain socket) that can stop reading.

    Its receive buffer is tiny and it reads nothing while stalled, so the server's writes back up
    exactly as they would behind a slow mobile connection.
    """

    def __init__(self, ws_url: str) -> None:
        self.protocol = ClientProtocol(parse_uri(ws_url), subprotocols=[Subprotocol(TRANSPORT_WS)], max_size=None)
        host, port = ws_url.removeprefix("ws://").split("/")[0].split(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((host, int(port)))
        self.sock.settimeout(20)
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        while self.protocol.state is State.CONNECTING:
            self.protocol.receive_data(self.sock.recv(65536))
        self.protocol.events_received()

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            self.sock.sendall(data)

    def send(self, message: dict[str, object]) -> None:
        self.protocol.send_text(json.dumps(message).encode())
        self._flush()

    def receive(self) -> list[Frame]:
        while True:
            data = self.sock.recv(1 << 20)
            if data:
                self.protocol.receive_data(data)
            else:
                self.protocol.receive_eof()
            self._flush()
            events = [event for event in self.protocol.events_received() if isinstance(event, Frame)]
            if events or not data:
                return events

    def close_frame(self) -> Close | None:
        """Read everything the server sent, until it closes; its close frame."""
        while self.protocol.state is not State.CLOSED:
            for frame in self.receive():
                if frame.opcode is Opcode.CLOSE:
                    return Close.parse(frame.data)
        return None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_socket_that_stops_reading_is_closed_1013(settings: Settings, token_for: Callable[..., str],
                                                          sessions, alice: User) -> None:  # type: ignore[no-untyped-def]
    document = await make_document(sessions, alice)
    doc_id = global_id("Document", document.id)
    app = create_app(settings.model_copy(update={"realtime_queue_size": 4}))
    async with LiveServer(app) as live, httpx.AsyncClient(base_url=live.url, timeout=30) as http:
        client = await asyncio.to_thread(StalledClient, f"{live.ws_url}/graphql")
        client.send({"type": "connection_init", "payload": {"Authorization": f"Bearer {token_for(alice)}"}})
        assert json.loads((await asyncio.to_thread(client.receive))[0].data)["type"] == "connection_ack"
        client.send({"type": "subscribe", "id": "1", "payload": {
            "query": "subscription($id: ID!) { documentEvents(documentId: $id) { kind update } }",
            "variables": {"id": doc_id}}})
        assert b"JOINED" in (await asyncio.to_thread(client.receive))[0].data
        # The client now reads nothing while large updates pile up on the server and in the kernel.
        writer: Doc = Doc()
        token = token_for(alice)
        for _ in range(80):
            before = writer.get_state()
            writer.get("content", type=Text).insert(0, "x" * 200_000)
            update = base64.b64encode(writer.get_update(before)).decode()
            body = await post_gql(http, token, "mutation($id: ID!, $u: Base64!) { applyDocumentUpdate(input: "
                                  "{documentId: $id, update: $u}) { version } }", {"id": doc_id, "u": update})
            assert body["data"]["applyDocumentUpdate"]["version"]
        close = await asyncio.to_thread(client.close_frame)
    assert close is not None
    assert (close.code, close.reason) == (1013, "Subscriber too slow: resume with afterVersion")


@pytest.mark.parametrize("fault", ["stopped", "hung"])
async def test_local_subscribers_get_events_while_redis_is_down(fault: str) -> None:
    """Redis stopped or hung (SIGSTOP): this instance's subscribers still get every event at once,
    and publishing never waits for Redis (the sender gives up in the background)."""
    import time

    from tests.redis_server import PrivateRedis

    with PrivateRedis() as server:
        redis = Redis.from_url(server.url, socket_timeout=2)
        broker = RedisBroker(redis, redis_prefix(), publish_timeout=0.3)
        try:
            local = await broker.subscribe("tasks")
            with server.fault(fault):
                started = time.monotonic()
                for n in range(3):
                    await broker.publish("tasks", f"event {n}".encode())
                assert time.monotonic() - started < 0.1  # not one timeout: the mutation never waits for Redis
                assert [local.get_nowait() for _ in range(3)] == [b"event 0", b"event 1", b"event 2"]
            await local.close()
        finally:
            await broker.close()
            await redis.aclose()


async def test_after_an_outage_other_instances_hear_again_and_the_lost_are_counted() -> None:
    from limits.breaker import Breaker
    from tests.redis_server import PrivateRedis

    with PrivateRedis() as server:
        redis = Redis.from_url(server.url, socket_timeout=2)
        prefix = redis_prefix()
        gate = Breaker(threshold=2, cooldown=0.5)
        sender = RedisBroker(redis, prefix, publish_timeout=0.2, gate=gate)
        receiver = RedisBroker(Redis.from_url(server.url), prefix)
        try:
            remote = await receiver.subscribe("tasks")
            await sender.publish("tasks", b"before")
            assert await asyncio.wait_for(remote.__anext__(), 5) == b"before"
            with server.fault("hung"):
                for n in range(20):
                    await sender.publish("tasks", f"lost {n}".encode())
                    await asyncio.sleep(0.05)
                assert gate.state != "closed"  # a few timeouts, then no more asking
            await asyncio.sleep(0.6)  # the cool-down: the next batch probes Redis
            await sender.publish("tasks", b"after")
            received = [await asyncio.wait_for(remote.__anext__(), 5) for _ in range(1)]
            while received[-1] != b"after":  # what the hung Redis still had in its buffers may come first
                received.append(await asyncio.wait_for(remote.__anext__(), 5))
            assert sender.dropped >= 10
            await remote.close()
        finally:
            await sender.close()
            await receiver.close()
            await redis.aclose()
