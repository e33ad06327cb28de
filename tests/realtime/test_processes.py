"""Real server processes: two instances sharing Redis and PostgreSQL, a crash and restart, SIGTERM.

Each server is `uvicorn app.main:app_from_environment` in its own process (see `ServerProcess`).
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from app.settings import Settings
from db.models import User
from tests.conftest import global_id
from tests.factories import make_document, make_user
from tests.realtime.conftest import TRANSPORT_WS, ServerProcess, post_gql, redis_prefix, require_redis
from tests.realtime.test_convergence import run_editors

EDIT = """mutation($id: ID!, $text: String!) {
  editDocumentText(input: {documentId: $id, edits: [{index: 0, insert: $text}], baseVersion: 0}) { version } }"""
CONTENT = "query($id: ID!) { document(id: $id) { content version } }"


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[[Settings], ServerProcess]]:
    started: list[ServerProcess] = []

    def start(settings: Settings) -> ServerProcess:
        server = ServerProcess(settings, tmp_path / f"server-{len(started)}.log")
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.parametrize("redis", ["single", "cluster"])
async def test_editors_on_two_instances_converge(settings: Settings, processes: Callable[[Settings], ServerProcess],
                                                 token_for: Callable[..., str], sessions, alice: User,  # type: ignore[no-untyped-def]
                                                 redis: str, request: pytest.FixtureRequest) -> None:
    require_redis()
    url = "redis://127.0.0.1:6379/5" if redis == "single" else request.getfixturevalue("redis_cluster").url
    shared = settings.model_copy(update={"redis_url": url, "redis_prefix": redis_prefix()})
    first, second = processes(shared), processes(shared)
    others = [await make_user(sessions) for _ in range(3)]
    document = await make_document(sessions, alice, editors=others)
    tokens = [token_for(user) for user in [alice, *others]]
    plan = [(n % 4, n % 5 != 4, n * 7, n % 3) for n in range(32)]
    # Editors 0 and 2 talk to the first instance, 1 and 3 to the second (Yjs and index clients on each).
    editors = await run_editors([first, second], tokens, global_id("Document", document.id),
                                [True, True, False, False], plan)
    assert sum(editor.acknowledged for editor in editors) > 20


async def test_a_crash_loses_no_acknowledged_update(settings: Settings, processes: Callable[[Settings], ServerProcess],
                                                    token_for: Callable[..., str], sessions, alice: User) -> None:  # type: ignore[no-untyped-def]
    document = await make_document(sessions, alice)
    doc_id = global_id("Document", document.id)
    token = token_for(alice)
    server = processes(settings)
    acknowledged: list[str] = []
    enough = asyncio.Event()

    async def writer(number: int) -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            for n in range(1000):
                text = f"<{number}.{n}>"
                try:
                    body = await post_gql(http, token, EDIT, {"id": doc_id, "text": text})
                except (httpx.HTTPError, AssertionError):
                    return  # the server is gone: this edit was never acknowledged
                if body.get("data", {}).get("editDocumentText", {}).get("version"):
                    acknowledged.append(text)
                    if len(acknowledged) >= 30:
                        enough.set()

    writers = [asyncio.create_task(writer(number)) for number in range(4)]
    await asyncio.wait_for(enough.wait(), 60)
    server.signal(signal.SIGKILL)  # no shutdown, no flushing: a crash
    await asyncio.gather(*writers)
    server.wait()

    restarted = processes(settings)
    async with httpx.AsyncClient(base_url=restarted.url, timeout=10) as http:
        state = (await post_gql(http, token, CONTENT, {"id": doc_id}))["data"]["document"]
    missing = [text for text in acknowledged if text not in state["content"]]
    assert missing == []
    assert state["version"] >= len(acknowledged)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sigterm_tells_subscribers_to_reconnect(settings: Settings, processes: Callable[[Settings], ServerProcess],
                                                      token_for: Callable[..., str], sessions, alice: User) -> None:  # type: ignore[no-untyped-def]
    document = await make_document(sessions, alice)
    server = processes(settings)
    async with websockets.connect(f"{server.ws_url}/graphql", subprotocols=[TRANSPORT_WS]) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token_for(alice)}"}}))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        query = "subscription($id: ID!) { documentEvents(documentId: $id) { kind } }"
        await socket.send(json.dumps({"type": "subscribe", "id": "1", "payload": {
            "query": query, "variables": {"id": global_id("Document", document.id)}}}))
        assert json.loads(await socket.recv())["payload"]["data"]["documentEvents"]["kind"] == "JOINED"
        server.signal(signal.SIGTERM)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(socket.recv(), 15)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    assert server.wait() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
