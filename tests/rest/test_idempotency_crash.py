"""`Idempotency-Key` across a crash: a server process killed (-9) in the middle of a mutation, the
client retrying with the same key on another instance, gets exactly one effect, and at once (no
claim has to expire first)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
from collections.abc import Callable

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select

from app.settings import Settings
from db.engine import Sessions
from db.models import Task, User
from tests.conftest import GRAPHQL_RESPONSE
from tests.live_server import server_process, server_processes
from tests.rest.conftest import eventually
from tests.rest.test_idempotency import _waiting_on_a_lock

CREATE = """mutation($title: String!) { createTask(input: {title: $title}) { task { id title } } }"""


def _env(settings: Settings) -> dict[str, str]:
    return {
        "TANDEM_DATABASE_URL": settings.database_url,
        "TANDEM_KEYS_DIR": str(settings.keys_dir),
        "TANDEM_RATE_TIERS": json.dumps({"user": {"capacity": 1_000_000, "restore_rate": 1_000_000}}),
        "TANDEM_WEBHOOK_WORKER": "false",
        "TANDEM_LOG_JSON": "false",
    }


async def _titled(sessions: Sessions, title: str) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Task).where(Task.title == title)) or 0)


async def _create(http: httpx.AsyncClient, url: str, token: str, key: str, title: str) -> httpx.Response:
    return await http.post(f"{url}/graphql", json={"query": CREATE, "variables": {"title": title}}, headers={
        "Authorization": f"Bearer {token}", "Accept": GRAPHQL_RESPONSE, "Idempotency-Key": key})


async def _until_answered(http: httpx.AsyncClient, url: str, token: str, key: str, title: str) -> httpx.Response:
    """What a client does: retry on 409 and on a dropped connection until it has an answer."""
    for _ in range(200):
        with contextlib.suppress(httpx.TransportError):
            response = await _create(http, url, token, key, title)
            if response.status_code != 409:
                return response
        await asyncio.sleep(0.1)
    pytest.fail(f"no answer for key {key}", pytrace=False)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_killed_mid_mutation_the_retry_runs_once(
    settings: Settings, sessions: Sessions, alice: User, token_for: Callable[..., str]
) -> None:
    token = token_for(alice)
    admin = await asyncpg.connect(settings.database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        with server_process(_env(settings)) as (doomed, pid), server_processes(_env(settings), 1) as [survivor]:
            async with httpx.AsyncClient(timeout=30) as http:
                # Hold alice's row: the first request's INSERT waits on it (its foreign key) mid-mutation.
                lock = admin.transaction()
                await lock.start()
                await admin.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", alice.id)
                first = asyncio.ensure_future(_create(http, doomed, token, "crash-1", "Exactly once"))
                await eventually(lambda: _waiting_on_a_lock(settings.database_url), "the first request to be mid-mutation")
                os.kill(pid, signal.SIGKILL)
                with pytest.raises(httpx.TransportError):
                    await first  # the client never got an answer
                await lock.rollback()
                retry = await _until_answered(http, survivor, token, "crash-1", "Exactly once")
                again = await _create(http, survivor, token, "crash-1", "Exactly once")
    finally:
        await admin.close()
    assert retry.status_code == 200 and "idempotent-replayed" not in retry.headers  # the first left nothing
    assert again.content == retry.content and again.headers["idempotent-replayed"] == "true"
    assert await _titled(sessions, "Exactly once") == 1


async def test_instances_killed_under_load_create_each_task_once(
    settings: Settings, sessions: Sessions, alice: User, token_for: Callable[..., str]
) -> None:
    """Clients spread keyed creates over two instances; one is killed -9 twice mid-load and started
    again. Every key ends with one task, whatever the timing of the kills."""
    token = token_for(alice)
    keys = [f"load-{n}" for n in range(120)]
    pending = list(keys)
    killed: list[int] = []
    with server_processes(_env(settings), 1) as [steady]:
        async with httpx.AsyncClient(timeout=30) as http:
            for _ in range(2):
                with server_process(_env(settings)) as (doomed, pid):
                    urls = itertools.cycle([doomed, steady])

                    async def client(urls: itertools.cycle[str] = urls) -> None:
                        while pending:
                            key = pending.pop()
                            try:
                                response = await _create(http, next(urls), token, key, key)
                                if response.status_code != 200:
                                    pending.append(key)
                            except httpx.TransportError:
                                pending.append(key)  # retried later, by someone, with the same key

                    clients = [asyncio.ensure_future(client()) for _ in range(6)]
                    await eventually(lambda: len(pending) <= len(keys) // 2, "half of the keys to be sent")
                    os.kill(pid, signal.SIGKILL)  # with requests in flight on it
                    killed.append(len(pending))
                    await asyncio.gather(*clients)
                    pending.extend(keys)  # a second pass: every key again, all answered from storage
            answers = [await _until_answered(http, steady, token, key, key) for key in keys]
    assert len(killed) == 2 and all(0 < left < len(keys) for left in killed)
    assert all(answer.headers.get("idempotent-replayed") == "true" for answer in answers)
    async with sessions() as session:
        counts = dict((await session.execute(select(Task.title, func.count()).group_by(Task.title))).all())
    assert sorted(counts) == sorted(keys) and set(counts.values()) == {1}
