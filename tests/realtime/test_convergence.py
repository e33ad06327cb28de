"""Property: whatever the interleaving, concurrent editors (Yjs clients and index-edit clients together)
converge on the same text, lose no acknowledged edit, and see every version exactly once, in order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from db.models import User
from tests.conftest import global_id
from tests.factories import make_document, make_user
from tests.live_server import LiveServer
from tests.realtime.conftest import ws_session
from tests.realtime.editors import TOKEN, Editor

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

# (editor, insert?, where/which, pause in ms)
Step = tuple[int, bool, int, int]


def steps(editors: int, most: int) -> st.SearchStrategy[list[Step]]:
    step = st.tuples(st.integers(0, editors - 1), st.booleans() | st.just(True), st.integers(0, 1000), st.integers(0, 4))
    return st.lists(step, min_size=editors, max_size=most)


class Server(Protocol):
    @property
    def url(self) -> str: ...

    @property
    def ws_url(self) -> str: ...


async def run_editors(servers: Sequence[Server], tokens: list[str], document_id: str, yjs: list[bool],
                      plan: list[Step]) -> list[Editor]:
    """Editor n talks to `servers[n % len(servers)]` (HTTP for edits, graphql-ws for events)."""
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(httpx.AsyncClient(base_url=server.url, timeout=30))
                   for server in servers]
        editors = [Editor(n, yjs[n], clients[n % len(servers)], tokens[n % len(tokens)], document_id,
                          ws_url=f"{servers[n % len(servers)].ws_url}/graphql") for n in range(len(yjs))]
        async with ListeningEditors(editors) as listeners:
            async def act(editor: Editor) -> None:
                for number, insert, where, pause in plan:
                    if number != editor.number:
                        continue
                    await asyncio.sleep(pause / 1000)
                    await (editor.insert(where) if insert else editor.delete_own(where))

            await asyncio.gather(*(act(editor) for editor in editors))
            content, version = await editors[0].read()
            total = sum(editor.acknowledged for editor in editors)
            assert version == total, "every acknowledged edit is one version"
            deadline = asyncio.get_running_loop().time() + 20
            while any(len(editor.versions) < version for editor in editors):
                assert asyncio.get_running_loop().time() < deadline, [len(e.versions) for e in editors]
                await asyncio.sleep(0.02)
            for task in listeners:
                task.cancel()
    for editor in editors:
        assert editor.versions == list(range(1, version + 1)), "versions arrive once each, in order"
        assert editor.text == content, "every replica converges on the server's content"
    inserted = {token for editor in editors for token in editor.inserted}
    deleted = {token for editor in editors for token in editor.deleted}
    assert sorted(TOKEN.findall(content)) == sorted(inserted - deleted), "no acknowledged edit is lost"
    assert TOKEN.sub("", content) == "", "tokens stay intact"
    return editors


class ListeningEditors:
    """Opens one graphql-ws session per editor and starts its listener; waits until all have joined."""

    def __init__(self, editors: list[Editor]) -> None:
        self.editors = editors
        self.sessions: list[Any] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> list[asyncio.Task[None]]:
        for editor in self.editors:
            manager = ws_session(editor.ws_url, editor.token)
            session = await manager.__aenter__()
            self.sessions.append(manager)
            ready = asyncio.Event()
            self.tasks.append(asyncio.create_task(editor.listen(session, ready)))
            await asyncio.wait_for(ready.wait(), 10)
        return self.tasks

    async def __aexit__(self, *exc: object) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for manager in reversed(self.sessions):
            await manager.__aexit__(None, None, None)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=steps(2, 16), yjs_first=st.booleans())
async def test_two_editors_converge(live: LiveServer, token_for: Callable[..., str], sessions, alice: User,  # type: ignore[no-untyped-def]
                                    bob: User, plan: list[Step], yjs_first: bool) -> None:
    document = await make_document(sessions, alice, editors=[bob])
    tokens = [token_for(alice), token_for(bob)]
    await run_editors([live], tokens, global_id("Document", document.id), [yjs_first, not yjs_first], plan)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=steps(10, 40), kinds=st.lists(st.booleans(), min_size=10, max_size=10))
async def test_ten_editors_converge(live: LiveServer, token_for: Callable[..., str], sessions, alice: User,  # type: ignore[no-untyped-def]
                                    plan: list[Step], kinds: list[bool]) -> None:
    others = [await make_user(sessions) for _ in range(9)]
    document = await make_document(sessions, alice, editors=others)
    yjs = [True, False, *kinds[2:]]  # always both kinds of client
    tokens = [token_for(user) for user in [alice, *others]]
    await run_editors([live], tokens, global_id("Document", document.id), yjs, plan)
