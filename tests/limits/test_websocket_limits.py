"""WebSocket limits: the component the subscription endpoint calls, with in-memory and Redis slots,
and then behind a minimal real WebSocket route under uvicorn with a real client flooding it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from limits.connection_slots import ConnectionSlots, MemorySlots, RedisSlots
from limits.websocket import (
    CLOSE_TOO_MANY_REQUESTS,
    ConnectionLimits,
    Refusal,
    Verdict,
    WebSocketLimiter,
    WebSocketPolicy,
)
from resolvers.context import Viewer
from tests.live_server import LiveServer

ALICE = Viewer(user_id=1, scopes=frozenset())
BOB = Viewer(user_id=2, scopes=frozenset())


@contextlib.asynccontextmanager
async def slots_of(kind: str, redis_url: str) -> AsyncIterator[ConnectionSlots]:
    if kind == "memory":
        yield MemorySlots()
        return
    redis = Redis.from_url(redis_url)
    try:
        yield RedisSlots(redis)
    finally:
        await redis.aclose()


LimiterFor = Callable[[WebSocketPolicy], contextlib.AbstractAsyncContextManager[WebSocketLimiter]]


@pytest.fixture(params=["memory", "redis"])
def limiter_for(request: pytest.FixtureRequest, limits_redis_url: str) -> LimiterFor:
    """A limiter with the given policy over in-memory slots, or over Redis database 4."""
    kind = request.param

    @contextlib.asynccontextmanager
    async def build(policy: WebSocketPolicy) -> AsyncIterator[WebSocketLimiter]:
        async with slots_of(kind, limits_redis_url) as slots:
            yield WebSocketLimiter(policy, slots)

    return build


async def _opened(limiter: WebSocketLimiter, connection_id: str, address: str = "198.51.100.7") -> ConnectionLimits:
    limits = await limiter.open(connection_id, address)
    assert isinstance(limits, ConnectionLimits), limits
    return limits


# --- per connection: message rate and subscriptions ---------------------------------------------


async def test_message_flood_is_dropped_then_closed() -> None:
    limiter = WebSocketLimiter(WebSocketPolicy(messages_per_second=0.001, message_burst=5, strikes=3), MemorySlots())
    limits = await _opened(limiter, "c1")
    verdicts = [limits.message() for _ in range(8)]
    assert verdicts == [Verdict.ACCEPT] * 5 + [Verdict.DROP, Verdict.DROP, Verdict.CLOSE]
    assert limits.struck_out


async def test_the_message_bucket_refills() -> None:
    limiter = WebSocketLimiter(WebSocketPolicy(messages_per_second=1_000, message_burst=1), MemorySlots())
    limits = await _opened(limiter, "c1")
    assert limits.message() is Verdict.ACCEPT
    await asyncio.sleep(0.01)  # a thousand a second: refilled by now
    assert limits.message() is Verdict.ACCEPT


async def test_subscriptions_per_connection() -> None:
    limiter = WebSocketLimiter(WebSocketPolicy(max_subscriptions=2, strikes=5), MemorySlots())
    limits = await _opened(limiter, "c1")
    assert limits.subscribe("1") and limits.subscribe("2")
    assert limits.subscribe("2")  # the same operation again is not another subscription
    assert not limits.subscribe("3")
    limits.unsubscribe("1")
    assert limits.subscribe("3")
    assert limits.strikes == 1


# --- across connections: per address, per user, cool-down (memory and Redis) ------------------


async def test_connections_per_address(limiter_for: LimiterFor) -> None:
    async with limiter_for(WebSocketPolicy(max_connections_per_ip=2)) as limiter:
        first = await _opened(limiter, "c1")
        await _opened(limiter, "c2")
        refused = await limiter.open("c3", "198.51.100.7")
        elsewhere = await limiter.open("c4", "203.0.113.9")
        await first.close()
        again = await limiter.open("c5", "198.51.100.7")
    assert isinstance(refused, Refusal) and refused.close_code == CLOSE_TOO_MANY_REQUESTS
    assert "at most 2" in refused.reason
    assert isinstance(elsewhere, ConnectionLimits) and isinstance(again, ConnectionLimits)


async def test_connections_per_user(limiter_for: LimiterFor) -> None:
    async with limiter_for(WebSocketPolicy(max_connections_per_user=1)) as limiter:
        first = await _opened(limiter, "c1", "198.51.100.1")
        second = await _opened(limiter, "c2", "198.51.100.2")
        assert await first.identify(ALICE) is None
        refusal = await second.identify(ALICE)
        assert isinstance(refusal, Refusal) and "user" in refusal.reason
        assert await second.identify(BOB) is None
        assert await second.identify(None) is None  # anonymous: counted by address only
        await first.close()
        third = await _opened(limiter, "c3", "198.51.100.3")
        assert await third.identify(ALICE) is None


async def test_striking_out_cools_address_and_user_down(
    limiter_for: LimiterFor,
) -> None:
    policy = WebSocketPolicy(messages_per_second=0.001, message_burst=1, strikes=2, cool_down_seconds=30)
    async with limiter_for(policy) as limiter:
        flooder = await _opened(limiter, "c1", "198.51.100.7")
        assert await flooder.identify(ALICE) is None
        assert [flooder.message() for _ in range(3)] == [Verdict.ACCEPT, Verdict.DROP, Verdict.CLOSE]
        await flooder.close()
        same_address = await limiter.open("c2", "198.51.100.7")
        other = await _opened(limiter, "c3", "203.0.113.9")
        same_user = await other.identify(ALICE)
    assert isinstance(same_address, Refusal) and 20 <= same_address.retry_after <= 30
    assert isinstance(same_user, Refusal) and same_user.close_code == CLOSE_TOO_MANY_REQUESTS


async def test_a_dead_instances_slots_lapse(limits_redis_url: str) -> None:
    redis = Redis.from_url(limits_redis_url)
    try:
        limiter = WebSocketLimiter(WebSocketPolicy(max_connections_per_ip=1, lease_seconds=0.5), RedisSlots(redis))
        await _opened(limiter, "c1")  # never closed: its instance "died"
        assert isinstance(await limiter.open("c2", "198.51.100.7"), Refusal)
        await asyncio.sleep(0.6)
        keys = sorted([key.decode() async for key in redis.scan_iter(match="tandem:ws:*")])
        assert isinstance(await limiter.open("c3", "198.51.100.7"), ConnectionLimits)
    finally:
        await redis.aclose()
    assert keys in ([], ["tandem:ws:slots:{ip:198.51.100.7}"])


async def test_renewing_keeps_a_slot(limits_redis_url: str) -> None:
    redis = Redis.from_url(limits_redis_url)
    try:
        limiter = WebSocketLimiter(WebSocketPolicy(max_connections_per_ip=1, lease_seconds=1), RedisSlots(redis))
        alive = await _opened(limiter, "c1")
        for _ in range(4):  # 1.2 s in all: past the lease, which only renewing keeps
            await asyncio.sleep(0.3)
            await alive.renew()
        assert isinstance(await limiter.open("c2", "198.51.100.7"), Refusal)
    finally:
        await redis.aclose()


async def test_unreachable_redis_lets_connections_in() -> None:
    redis = Redis.from_url("redis://127.0.0.1:1/0")
    try:
        limiter = WebSocketLimiter(WebSocketPolicy(max_connections_per_ip=1), RedisSlots(redis))
        limits = await _opened(limiter, "c1")
        assert await limits.identify(ALICE) is None
        await limits.close()
    finally:
        await redis.aclose()


# --- behind a real WebSocket route --------------------------------------------------------------


def _route(limiter: WebSocketLimiter, handled: list[str]) -> Starlette:
    """The smallest graphql-transport-ws-shaped endpoint that calls the limits where the real one will."""

    async def endpoint(websocket: WebSocket) -> None:
        address = websocket.client.host if websocket.client else None
        limits = await limiter.open(str(id(websocket)), address)
        if isinstance(limits, Refusal):
            await websocket.send_denial_response(
                Response(limits.reason, status_code=429, headers={"Retry-After": str(limits.retry_after)}))
            return
        await websocket.accept(subprotocol="graphql-transport-ws")
        try:
            while True:
                message = json.loads(await websocket.receive_text())
                verdict = limits.message()
                if verdict is Verdict.CLOSE:
                    await websocket.close(CLOSE_TOO_MANY_REQUESTS, "Too many messages.")
                    return
                if verdict is Verdict.DROP:
                    continue
                handled.append(message["type"])
                if message["type"] == "connection_init":
                    await websocket.send_text(json.dumps({"type": "connection_ack"}))
                elif message["type"] == "ping":
                    await websocket.send_text(json.dumps({"type": "pong"}))
        except WebSocketDisconnect:
            pass
        finally:
            await limits.close()

    return Starlette(routes=[WebSocketRoute("/graphql", endpoint)])


async def test_a_flooding_client_is_closed_with_4429_and_refused_for_a_while() -> None:
    policy = WebSocketPolicy(messages_per_second=0.001, message_burst=10, strikes=3, cool_down_seconds=60)
    handled: list[str] = []
    async with LiveServer(_route(WebSocketLimiter(policy, MemorySlots()), handled)) as server:
        url = f"{server.ws_url}/graphql"
        async with connect(url, subprotocols=["graphql-transport-ws"]) as socket:  # type: ignore[list-item]
            await socket.send(json.dumps({"type": "connection_init"}))
            assert json.loads(await socket.recv()) == {"type": "connection_ack"}
            with pytest.raises(ConnectionClosed) as closed:
                for _ in range(50):
                    await socket.send(json.dumps({"type": "ping"}))
                while True:
                    await socket.recv()
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, subprotocols=["graphql-transport-ws"]):  # type: ignore[list-item]
                pass

    assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_TOO_MANY_REQUESTS
    assert handled == ["connection_init"] + ["ping"] * 9  # the burst, and nothing past it
    assert refused.value.response.status_code == 429
    assert 50 <= int(refused.value.response.headers["Retry-After"]) <= 60
