"""WebSocket limits on the real endpoint (limits/websocket.py wired into app/graphql_ws.py): message
rate, operations per connection, connections per user and per address, the cool-down after a
strike-out, and the cost limit's refusals counted as strikes. Raw `websockets` clients on a live
server, where frames and close codes are the point; SQLite only (no query touches much data).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import websockets
from redis.asyncio import Redis

from app.main import create_app
from app.settings import Settings
from db.models import User
from tests.limits.conftest import tiers
from tests.live_server import LiveServer
from tests.realtime.conftest import LEGACY_WS, TRANSPORT_WS, redis_prefix

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

# Connection slots shared by two instances live in this Redis database (keys `tandem:ws:*`).
WS_REDIS_URL = os.environ.get("TANDEM_TEST_WS_REDIS_URL", "redis://127.0.0.1:6379/9")
TASK_EVENTS = {"query": "subscription { taskEvents { kind } }"}
VIEWER = {"query": "{ viewer { name } }"}


async def _closed_with(socket: Any) -> tuple[int, str]:
    """Read until the server closes; the close code and reason it sent."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(socket.recv(), 10)
    assert closed.value.rcvd is not None, "the server closed without a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def _receive(socket: Any) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), 10))
    return message


async def _init(socket: Any, token: str) -> dict[str, Any]:
    await socket.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
    return await _receive(socket)


def _connect(server: LiveServer, protocol: str = TRANSPORT_WS) -> Any:
    return websockets.connect(f"{server.ws_url}/graphql", subprotocols=[protocol])


@contextlib.asynccontextmanager
async def _serving(settings: Settings, **limits: Any) -> AsyncIterator[LiveServer]:
    async with LiveServer(create_app(settings.model_copy(update=limits))) as server:
        yield server


def _error_code(message: dict[str, Any]) -> str:
    assert message["type"] == "error", message
    code: str = message["payload"][0]["extensions"]["code"]
    return code


async def test_a_message_flood_is_dropped_then_closed_4429(settings: Settings, token_for: Callable[..., str],
                                                            alice: User) -> None:
    # Three messages at once, then (practically) none: init and two pings pass, the rest are strikes.
    async with _serving(settings, ws_message_burst=3, ws_messages_per_second=0.001, ws_strikes=3) as live, \
            _connect(live) as socket:
        assert await _init(socket, token_for(alice)) == {"type": "connection_ack"}
        for _ in range(2):
            await socket.send(json.dumps({"type": "ping"}))
            assert await _receive(socket) == {"type": "pong"}
        await socket.send(json.dumps({"type": "subscribe", "id": "over", "payload": VIEWER}))
        refused = await _receive(socket)  # strike 1: dropped, and told why
        assert refused["id"] == "over" and _error_code(refused) == "RATE_LIMITED"
        assert refused["payload"][0]["extensions"]["requestId"]
        await socket.send(json.dumps({"type": "ping"}))  # strike 2: dropped silently
        await socket.send(json.dumps({"type": "ping"}))  # strike 3: closed
        assert await _closed_with(socket) == (4429, "Too many requests: message rate exceeded")


async def test_the_legacy_protocol_is_rate_limited_too(settings: Settings, token_for: Callable[..., str],
                                                       alice: User) -> None:
    async with _serving(settings, ws_message_burst=1, ws_messages_per_second=0.001, ws_strikes=2) as live, \
            _connect(live, LEGACY_WS) as socket:
        assert await _init(socket, token_for(alice)) == {"type": "connection_ack"}
        await socket.send(json.dumps({"type": "start", "id": "1", "payload": VIEWER}))
        refused = await _receive(socket)
        assert refused["type"] == "error" and refused["payload"]["extensions"]["code"] == "RATE_LIMITED"
        await socket.send(json.dumps({"type": "start", "id": "2", "payload": VIEWER}))
        assert await _closed_with(socket) == (4429, "Too many requests: message rate exceeded")


async def test_too_many_operations_on_one_connection_are_refused(settings: Settings, token_for: Callable[..., str],
                                                                 alice: User) -> None:
    async with _serving(settings, ws_max_subscriptions=2, ws_strikes=3) as live, _connect(live) as socket:
        assert await _init(socket, token_for(alice)) == {"type": "connection_ack"}
        for operation_id in ("a", "b"):
            await socket.send(json.dumps({"type": "subscribe", "id": operation_id, "payload": TASK_EVENTS}))
        await socket.send(json.dumps({"type": "subscribe", "id": "c", "payload": TASK_EVENTS}))
        refused = await _receive(socket)
        assert refused["id"] == "c" and _error_code(refused) == "RATE_LIMITED"
        assert refused["payload"][0]["message"] == "Too many operations on this connection (at most 2 at once)."
        # Completing one frees its slot: the next operation runs (and, finished, frees its own).
        await socket.send(json.dumps({"type": "complete", "id": "a"}))
        for operation_id in ("d", "e"):
            await socket.send(json.dumps({"type": "subscribe", "id": operation_id, "payload": VIEWER}))
            answer = await _receive(socket)
            assert (answer["id"], answer["type"]) == (operation_id, "next")
            assert answer["payload"]["data"] == {"viewer": {"name": "Alice"}}
            assert await _receive(socket) == {"id": operation_id, "type": "complete"}
        # Refusals are strikes: the third closes the connection.
        for operation_id in ("f", "g"):
            await socket.send(json.dumps({"type": "subscribe", "id": operation_id, "payload": TASK_EVENTS}))
        assert _error_code(await _receive(socket)) == "RATE_LIMITED"  # "g": strike 2 ("f" took the free slot)
        await socket.send(json.dumps({"type": "subscribe", "id": "h", "payload": TASK_EVENTS}))
        assert await _closed_with(socket) == (4429, "Too many requests: operation limit exceeded")


async def test_too_many_connections_per_user_are_refused(settings: Settings, token_for: Callable[..., str],
                                                         alice: User, bob: User) -> None:
    async with _serving(settings, ws_max_connections_per_user=2) as live:
        async with _connect(live) as first, _connect(live) as second:
            for socket in (first, second):
                assert await _init(socket, token_for(alice)) == {"type": "connection_ack"}
            async with _connect(live) as third:
                await third.send(json.dumps({"type": "connection_init",
                                             "payload": {"Authorization": f"Bearer {token_for(alice)}"}}))
                assert await _closed_with(third) == (
                    4429, "Too many connections for this user (at most 2). Retry after 1 s.")
            async with _connect(live) as other:  # per user: Bob is not affected
                assert await _init(other, token_for(bob)) == {"type": "connection_ack"}
        # Closed connections give their slots back.
        await _eventually_acked(live, token_for(alice))


async def test_too_many_connections_per_address_are_refused_at_the_handshake(settings: Settings) -> None:
    async with _serving(settings, ws_max_connections_per_ip=1) as live, _connect(live) as first:
        async with _connect(live) as second:
            assert await _closed_with(second) == (
                4429, "Too many connections for this address (at most 1). Retry after 1 s.")
        await first.send(json.dumps({"type": "ping"}))  # the first is untouched (and not yet initialised)


async def test_a_struck_out_client_is_cooled_down(settings: Settings, token_for: Callable[..., str],
                                                  alice: User) -> None:
    async with _serving(settings, ws_message_burst=1, ws_messages_per_second=0.001, ws_strikes=1,
                        ws_cool_down_seconds=60) as live:
        async with _connect(live) as socket:
            assert await _init(socket, token_for(alice)) == {"type": "connection_ack"}
            await socket.send(json.dumps({"type": "ping"}))
            assert (await _closed_with(socket))[0] == 4429
        deadline = time.monotonic() + 5
        while True:  # the server frees the slots (and starts the cool-down) as the socket ends
            async with _connect(live) as again:
                code, reason = await _closed_with(again)
            if reason.startswith("Too many requests from this address") or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert code == 4429
        assert reason.startswith("Too many requests from this address; try again later. Retry after ")
        assert 55 <= int(reason.rsplit(" ", 2)[1]) <= 60


async def test_subscriptions_are_charged_and_refusals_count_as_strikes(
    settings: Settings, token_for: Callable[..., str], alice: User
) -> None:
    # A subscription root field costs 10: a bucket of 15 pays for one, then refuses.
    async with _serving(settings, rate_tiers=tiers(capacity=15), ws_strikes=2) as live, _connect(live) as socket:
        assert await _init(socket, token_for(alice)) == {"type": "connection_ack"}
        await socket.send(json.dumps({"type": "subscribe", "id": "1", "payload": TASK_EVENTS}))
        await socket.send(json.dumps({"type": "subscribe", "id": "2", "payload": TASK_EVENTS}))
        refused = await _receive(socket)
        assert refused["id"] == "2"
        errors = refused["payload"]["errors"] if refused["type"] == "next" else refused["payload"]
        assert errors[0]["extensions"]["code"] == "RATE_LIMITED"
        await socket.send(json.dumps({"type": "subscribe", "id": "3", "payload": TASK_EVENTS}))
        assert await _closed_with(socket) == (4429, "Too many requests: rate limit exceeded")


async def test_connections_per_user_are_counted_across_instances(
    settings: Settings, token_for: Callable[..., str], alice: User
) -> None:
    async with _ws_redis() as redis_url:
        shared = settings.model_copy(update={"redis_url": redis_url, "redis_prefix": redis_prefix(),
                                             "ws_max_connections_per_user": 1})
        async with LiveServer(create_app(shared)) as one, LiveServer(create_app(shared)) as two:
            async with _connect(one) as first, _connect(two) as second:
                assert await _init(first, token_for(alice)) == {"type": "connection_ack"}
                await second.send(json.dumps({"type": "connection_init",
                                              "payload": {"Authorization": f"Bearer {token_for(alice)}"}}))
                assert await _closed_with(second) == (
                    4429, "Too many connections for this user (at most 1). Retry after 1 s.")
            await _eventually_acked(two, token_for(alice))


async def _eventually_acked(live: LiveServer, token: str) -> None:
    deadline = time.monotonic() + 5
    while True:
        async with _connect(live) as socket:
            reply = await socket.send(json.dumps({"type": "connection_init",
                                                  "payload": {"Authorization": f"Bearer {token}"}}))
            with contextlib.suppress(websockets.ConnectionClosed):
                reply = await _receive(socket)
            if reply == {"type": "connection_ack"}:
                return
        assert time.monotonic() < deadline, "the closed connections' slots were never given back"
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def _ws_redis() -> AsyncIterator[str]:
    """Redis database 9 without WebSocket slots or cool-downs (user ids repeat from test to test)."""
    redis = Redis.from_url(WS_REDIS_URL)
    try:
        await redis.ping()
    except OSError as exc:
        pytest.fail(f"Redis is not reachable at {WS_REDIS_URL} ({exc}); run scripts/ensure-services", pytrace=False)

    async def clear() -> None:
        keys = [key async for key in redis.scan_iter(match="tandem:ws:*")]
        if keys:
            await redis.delete(*keys)

    try:
        await clear()
        yield WS_REDIS_URL
    finally:
        await clear()
        await redis.aclose()


@pytest.mark.parametrize("redis_mode", [False, True], ids=["memory", "redis"])
async def test_a_strike_out_frees_its_slots_cools_down_and_lets_the_server_stop(
    settings: Settings, token_for: Callable[..., str], alice: User, redis_mode: bool
) -> None:
    """25 subscribes at once on one socket: 20 run, the next 3 are strikes, the socket closes 4429;
    its slots are given back, the user and address cool down, and shutdown completes. With Redis,
    under a prefix of the deployment's own (two deployments may share one Redis database)."""
    prefix = f"kitbar-{redis_prefix().removeprefix('tandem:')}"
    async with _ws_redis() as redis_url:
        update: dict[str, Any] = {"ws_cool_down_seconds": 60}
        if redis_mode:
            update |= {"redis_url": redis_url, "redis_prefix": prefix}
        live = LiveServer(create_app(settings.model_copy(update=update)))
        await live.__aenter__()
        try:
            async with _connect(live) as socket:
                assert await _init(socket, token_for(alice)) == {"type": "connection_ack"}
                for n in range(25):
                    await socket.send(json.dumps({"type": "subscribe", "id": str(n), "payload": TASK_EVENTS}))
                code, _ = await _closed_with(socket)
            assert code == 4429
            # At once: the cool-down is in place before the close frame is sent.
            async with _connect(live) as again:
                code, reason = await _closed_with(again)
            assert (code, reason.startswith("Too many requests from this address")) == (4429, True), reason
            if redis_mode:
                redis = Redis.from_url(redis_url)
                try:
                    keys = sorted([key.decode() async for key in redis.scan_iter(match=f"{prefix}*")])
                    assert f"{prefix}ws:cooldown:{{user:{alice.id}}}" in keys
                    assert f"{prefix}ws:cooldown:{{ip:127.0.0.1}}" in keys
                    assert not [k for k in keys if ":slots:" in k and await redis.zcard(k) > 0], keys
                    assert not [key async for key in redis.scan_iter(match="tandem:ws:*")]  # nothing unprefixed
                    if keys:
                        await redis.delete(*keys)
                finally:
                    await redis.aclose()
        finally:
            started = time.monotonic()
            await live.__aexit__(None, None, None)
            assert time.monotonic() - started < 10  # shutdown does not hang on the closed socket's tasks
