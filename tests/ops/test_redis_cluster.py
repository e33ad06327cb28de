"""Everything Tandem keeps in Redis, on one Redis server and on a real three-master Redis Cluster.

Each test runs twice: against the shared Redis (its keys under a prefix of their own) and against a
private cluster started for the run (`tests/redis_cluster.py`), through the app built from
`TANDEM_REDIS_URL=redis+cluster://…`. Keys of several users, tickets and channels hash to slots
on different nodes, which a client that knew only one node could not reach (MOVED).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from redis.asyncio import RedisCluster
from starlette.applications import Starlette

from app import redis_client
from app.main import create_app
from app.seed import ensure_demo_client
from app.settings import Settings
from auth.store import RedisStore
from limits.connection_slots import RedisSlots
from persisted_queries.apq import RedisAPQStore
from realtime.events import DocumentEventKind, decode
from tests.conftest import GRAPHQL_RESPONSE, REDIS_URL
from tests.factories import make_user
from tests.limits.conftest import tiers
from tests.realtime.conftest import redis_prefix
from tests.redis_cluster import PrivateCluster
from tests.rest.conftest import eventually

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(params=["single", "cluster"])
def redis_url(request: pytest.FixtureRequest) -> str:
    if request.param == "single":
        return REDIS_URL
    cluster: PrivateCluster = request.getfixturevalue("redis_cluster")
    return cluster.url


@pytest.fixture
def shared(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(update={"redis_url": redis_url, "redis_prefix": redis_prefix(),
                                       "single_instance": False})


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
            yield app, http


@pytest.fixture
def spread(request: pytest.FixtureRequest, redis_url: str) -> Callable[[str], None]:
    """`spread(pattern)`: on the cluster, fails unless the keys matching `pattern` sit on two nodes or
    more (keys that all landed on one node would prove nothing); on one server, nothing to check."""
    def check(pattern: str) -> None:
        if redis_url.startswith("redis+cluster://"):
            cluster: PrivateCluster = request.getfixturevalue("redis_cluster")
            nodes = {cluster.node_of(key) for key in cluster.keys(pattern)}
            assert len(nodes) >= 2, f"the keys {pattern} all landed on one node ({nodes})"

    return check


async def test_the_app_gets_the_client_for_the_url(shared: Settings, redis_url: str) -> None:
    client = redis_client.connect(redis_url)
    try:
        assert isinstance(client, RedisCluster) == redis_url.startswith("redis+cluster://")
        assert await client.ping()
    finally:
        await client.aclose()
    async with running(shared) as (_, http):
        ready = await http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["redis"] == "ok"


async def test_rate_limits_hold_for_buckets_on_every_node(shared: Settings, spread: Callable[[str], None]) -> None:
    configured = shared.model_copy(update={"rate_tiers": tiers(capacity=5)})
    async with running(configured) as (app, http):
        for n in range(6):
            user = await make_user(app.state.sessions, f"User {n}")
            token = app.state.tokens.issue_access_token(str(user.id), {"profile"})
            headers = {"Authorization": f"Bearer {token}", "Accept": GRAPHQL_RESPONSE}
            statuses = [(await http.post("/graphql", json={"query": "{ viewer { id } }"}, headers=headers))
                        .status_code for _ in range(7)]
            assert statuses.count(200) == 5 and statuses[-1] == 429, (n, statuses)
        spread(f"{shared.redis_prefix}ratelimit:*")


async def test_tickets_work_wherever_their_keys_land(shared: Settings, spread: Callable[[str], None]) -> None:
    async with running(shared) as (app, http):
        alice = await make_user(app.state.sessions, "Alice")
        token = app.state.tokens.issue_access_token(str(alice.id), {"profile"})
        answers = [await http.post("/auth/ws-ticket", headers={"Authorization": f"Bearer {token}"})
                   for _ in range(12)]
        assert {answer.status_code for answer in answers} == {201}
        spread(f"{shared.redis_prefix}ws-ticket:*")
        tickets = [answer.json()["ticket"] for answer in answers]
        assert [await app.state.tickets.redeem(ticket) for ticket in tickets] == [token] * 12
        assert [await app.state.tickets.redeem(ticket) for ticket in tickets] == [None] * 12  # once only


async def test_sign_in_pages_keep_their_sessions(shared: Settings) -> None:
    async with running(shared) as (app, http):
        await ensure_demo_client(app.state.sessions, shared.issuer, shared.graphiql_client_id)
        for n in range(12):
            page = await http.get("/oauth/authorize", params={
                "response_type": "code", "client_id": "tandem-demo", "state": f"s{n}",
                "redirect_uri": "http://127.0.0.1:8000/graphql", "code_challenge": "x" * 43,
                "code_challenge_method": "S256"})
            assert page.status_code == 200, page.text


async def test_the_store_on_any_node(shared: Settings) -> None:
    client = redis_client.connect(shared.redis_url or "")
    store = RedisStore(client, shared.redis_prefix)
    try:
        for n in range(8):
            await store.put(f"k{n}", str(n), 60)
            assert [await store.incr(f"c{n}", 60) for _ in range(2)] == [1, 2]
            await store.decr(f"c{n}")
            assert (await store.hit(f"w{n}", 60))[0] == 1
        assert [await store.pop(f"k{n}") for n in range(8)] == [str(n) for n in range(8)]
        assert await store.any_exists([f"c{n}" for n in range(8)]) is True
    finally:
        await client.aclose()


async def test_revocations_reach_every_instance(shared: Settings) -> None:
    async with running(shared) as (one, _), running(shared) as (two, two_http):
        alice = await make_user(one.state.sessions, "Alice")
        for app in (one, two):
            await eventually(lambda app=app: app.state.revocations.replica.in_sync, "the replicas to sync")
        tokens = [one.state.tokens.issue_access_token(str(alice.id), {"profile"}) for _ in range(6)]
        for token in tokens:
            claims = one.state.tokens.verify(token)
            await one.state.revocations.revoke_token(claims.token_id, claims.expires_at)
        for token in tokens:
            claims = two.state.tokens.verify(token)
            await eventually(lambda c=claims: two.state.revocations.replica.lookup([f"jti:{c.token_id}"]),
                             "the revocation to reach the other instance")
            answer = await two_http.post("/graphql", json={"query": "{ viewer { id } }"},
                                         headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 401
    # A replica that starts afterwards loads them from Redis.
    async with running(shared) as (three, _):
        await eventually(lambda: three.state.revocations.replica.in_sync, "a new replica to sync")
        assert all(three.state.revocations.replica.lookup([f"jti:{three.state.tokens.verify(t).token_id}"])
                   for t in tokens)
        assert not three.state.revocations.replica.lookup(["jti:never-revoked"])


async def test_document_events_cross_instances_on_every_node(shared: Settings) -> None:
    documents = list(range(1, 9))  # channels whose slots spread over the nodes
    async with running(shared) as (one, _), running(shared) as (two, _):
        subscriptions = [await two.state.realtime.subscribe_document(n) for n in documents]
        local = await one.state.realtime.subscribe_document(1)
        try:
            for n in documents:
                await one.state.realtime.publish_document(n, DocumentEventKind.SNAPSHOT, 7)
            received = [decode(await asyncio.wait_for(s.__anext__(), 5)) for s in subscriptions]
            assert [(event["documentId"], event["version"]) for event in received] == [(n, 7) for n in documents]
            assert decode(await asyncio.wait_for(local.__anext__(), 5))["documentId"] == 1
            assert local.get_nowait() is None  # delivered here once, not again on its way back
        finally:
            for subscription in [*subscriptions, local]:
                await subscription.close()


async def test_websocket_slots_and_cool_downs_on_every_node(shared: Settings) -> None:
    client = redis_client.connect(shared.redis_url or "")
    slots = RedisSlots(client, prefix=shared.redis_prefix)
    try:
        for n in range(6):
            scope = f"user:{n}"
            assert [await slots.take(scope, f"c{i}", 2, 30) for i in range(3)] == [True, True, False]
            await slots.release(scope, "c0")
            assert await slots.take(scope, "c2", 2, 30) is True
            await slots.cool_down(f"ip:{n}", 30)
            assert 29 < await slots.cooling(f"ip:{n}") <= 30
    finally:
        await client.aclose()


async def test_persisted_queries_in_one_slot(shared: Settings) -> None:
    client: Any = redis_client.connect(shared.redis_url or "")
    store = RedisAPQStore(client, 2, prefix=f"{shared.redis_prefix}{{apq}}")
    try:
        for n in range(3):
            assert await store.put(f"h{n}", f"query Q{n} {{ viewer {{ id }} }}")
        assert await store.get("h0") is None  # the least recently used went first
        assert await store.get("h2") == "query Q2 { viewer { id } }"
    finally:
        await client.aclose()



@pytest.mark.parametrize("prefix", ["{x}:", "tandem{:", "a}b:"])
def test_a_prefix_with_braces_is_refused(settings: Settings, prefix: str) -> None:
    """Braces in the prefix would become the hash tag of every key: one Cluster slot for everything."""
    with pytest.raises(ValidationError):
        Settings(database_url=settings.database_url, redis_prefix=prefix, _env_file=None)  # type: ignore[call-arg]
    assert Settings(database_url=settings.database_url, redis_prefix="ok:", _env_file=None).redis_prefix == "ok:"  # type: ignore[call-arg]
