"""A long-lived subscription does not grow the server's memory with the events it delivers.

The server runs in this process (uvicorn on a thread), so tracemalloc sees every allocation it makes;
a subscriber over graphql-transport-ws receives cursor events that a second user's mutations cause.
Memory traced after a warm-up, then after N more events and after N more again: the second N must
cost (about) nothing, where a leak of a few hundred bytes an event would show as tens of kilobytes.
"""

from __future__ import annotations

import gc
import logging
import tracemalloc
from collections.abc import Callable

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from db.models import User
from tests.conftest import global_id
from tests.factories import make_document
from tests.limits.conftest import tiers
from tests.live_server import LiveServer
from tests.realtime.conftest import next_within, post_gql, subscribe, ws_session

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

EVENTS = "subscription($id: ID!) { documentEvents(documentId: $id) { kind version user { name } cursor { anchor head } } }"
CURSOR = """mutation($id: ID!, $a: Int!) { updatePresence(input: {documentId: $id, cursor: {anchor: $a, head: $a}}) {
  expiresAt } }"""
WARM_UP, N = 150, 300
# The leak this guards against kept ~3,000 bytes an event; other threads of a long test run add noise.
ALLOWED_BYTES_PER_EVENT = 256


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def test_a_long_subscription_does_not_grow_memory(
    settings: Settings, sessions, alice: User, bob: User, token_for: Callable[..., str],  # type: ignore[no-untyped-def]
) -> None:
    document = await make_document(sessions, alice, viewers=[bob])
    doc_id = global_id("Document", document.id)
    configured = settings.model_copy(update={"presence_rate_per_second": 10_000.0, "realtime_recheck_seconds": 3600,
                                             "rate_tiers": tiers(capacity=10**9, restore_rate=10**6)})
    # Log records (access lines, httpx's, and whatever earlier tests' leftovers say) pile up in pytest's
    # capture: not the server's memory.
    logging.disable(logging.CRITICAL)
    tracemalloc.start()
    try:
        async with LiveServer(create_app(configured)) as server, \
                httpx.AsyncClient(base_url=server.url, timeout=30) as http, \
                ws_session(f"{server.ws_url}/graphql", token_for(alice)) as session:
            events = subscribe(session, EVENTS, {"id": doc_id})
            assert (await next_within(events))["documentEvents"]["kind"] == "JOINED"
            bob_token = token_for(bob)

            async def deliver(count: int) -> None:
                for n in range(count):
                    await post_gql(http, bob_token, CURSOR, {"id": doc_id, "a": n})
                    assert (await next_within(events))["documentEvents"]["cursor"] == {"anchor": n, "head": n}

            await deliver(WARM_UP)
            first = _traced()
            await deliver(N)
            second = _traced()
            await deliver(N)
            third = _traced()
    finally:
        tracemalloc.stop()
        logging.disable(logging.NOTSET)
    grown = third - second
    print(f"kept per event: {(second - first) / N:.0f} B, then {grown / N:.0f} B")
    assert grown < ALLOWED_BYTES_PER_EVENT * N, (
        f"{grown / N:.0f} bytes per event kept (the first {N}: {(second - first) / N:.0f})")
