"""Several instances, and instances that die: each delivery is sent by one worker at a time, and a
worker killed in the middle of a delivery loses no event (another sends it once the lease ends)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from app.settings import Settings
from db.engine import Sessions, make_engine, make_sessions
from db.models import User, utcnow
from db.webhooks import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent
from rest import leases
from tests.conftest import GRAPHQL_RESPONSE, TEST_SECRET_KEY, serve
from tests.factories import make_user
from tests.rest.conftest import CREATE_ENDPOINT, Receiver, eventually

ROOT = Path(__file__).resolve().parents[2]
CREATE_TASK = """mutation($title: String!) { createTask(input: {title: $title}) { task { id } } }"""


async def _graphql(http: httpx.AsyncClient, token: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query, "variables": variables},
                               headers={"Authorization": f"Bearer {token}", "Accept": GRAPHQL_RESPONSE})
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body


def _token(http: httpx.AsyncClient, user: User) -> str:
    """Minted by that app: these tests must not start the `app` fixture, whose worker would deliver too."""
    token: str = http._transport.app.state.tokens.issue_access_token(  # type: ignore[attr-defined]
        str(user.id), {"tasks:write", "webhooks"})
    return token


async def _deliveries(sessions: Sessions) -> list[WebhookDelivery]:
    async with sessions() as session:
        return list((await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))).all())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_no_event_is_lost_when_the_worker_is_killed_mid_delivery(
    settings: Settings, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.script = ["hang"]  # the first attempt never gets its answer: the sender dies first
    receiver.hang_seconds = 3.0
    quiet = settings.model_copy(update={"webhook_worker": False})
    async with serve(quiet) as http:
        sessions: Sessions = http._transport.app.state.sessions  # type: ignore[attr-defined]
        alice = await make_user(sessions, "Alice")
        token = _token(http, alice)
        await _graphql(http, token, CREATE_ENDPOINT, {"input": {"url": receiver.url, "events": ["TASK_CREATED"]}})
        await _graphql(http, token, CREATE_TASK, {"title": "Survives a crash"})

    # Another process, the real server, picks the delivery up; we kill it (SIGKILL) mid-request.
    env = {key: value for key, value in os.environ.items() if not key.startswith("TANDEM_")}
    env.update({
        "TANDEM_DATABASE_URL": settings.database_url, "TANDEM_KEYS_DIR": str(settings.keys_dir),
        "TANDEM_SECRET_KEY": TEST_SECRET_KEY, "TANDEM_LOG_JSON": "false", "TANDEM_WEBHOOK_POLL_SECONDS": "0.02",
        "TANDEM_WEBHOOK_TIMEOUT_SECONDS": "2", "TANDEM_WEBHOOK_LEASE_SECONDS": "2.5",
    })
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app.cli", "serve", "--port", str(_free_port()),
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            await eventually(lambda: receiver.count() == 1 or server.returncode is not None,
                             "the other process's attempt", within=60)
            assert server.returncode is None, log_path.read_text()
            server.send_signal(signal.SIGKILL)
        finally:
            if server.returncode is None:
                server.kill()
            await asyncio.wait_for(server.wait(), 10)

    async with serve(quiet) as http:
        sessions = http._transport.app.state.sessions  # type: ignore[attr-defined]
        [orphan] = await _deliveries(sessions)
    # Nothing was recorded for the attempt that died, and the delivery is still owed.
    assert (orphan.status, orphan.attempt_count, orphan.lock_token is not None) == ("pending", 0, True)

    # A surviving instance takes it over once the dead one's lease has run out.
    async with serve(settings.model_copy(update={"webhook_lease_seconds": 2.5})) as http:
        sessions = http._transport.app.state.sessions  # type: ignore[attr-defined]

        async def sent() -> WebhookDelivery | None:
            [delivery] = await _deliveries(sessions)
            return delivery if delivery.status == DeliveryStatus.SUCCEEDED.value else None

        delivered = await eventually(sent, "the delivery by the surviving instance")
    assert delivered.attempt_count == 1
    first, second = receiver.received  # at-least-once: the receiver saw it twice, with one id
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert json.loads(second.body)["data"]["task"]["title"] == "Survives a crash"


async def test_two_instances_send_each_delivery_once(settings: Settings, receiver: Receiver) -> None:
    async with serve(settings) as one, serve(settings) as two:
        sessions: Sessions = one._transport.app.state.sessions  # type: ignore[attr-defined]
        alice = await make_user(sessions, "Alice")
        token = _token(one, alice)
        await _graphql(one, token, CREATE_ENDPOINT, {"input": {"url": receiver.url, "events": ["TASK_CREATED"]}})
        await asyncio.gather(*(
            _graphql(http, token, CREATE_TASK, {"title": f"Task {n}"}) for n in range(12) for http in [(one, two)[n % 2]]
        ))
        await eventually(lambda: receiver.count() >= 12, "twelve deliveries")

        async def all_recorded() -> bool:
            return all(d.status == DeliveryStatus.SUCCEEDED.value for d in await _deliveries(sessions))

        await eventually(all_recorded, "every delivery recorded as sent")
        deliveries = await _deliveries(sessions)
    ids = [message.headers["webhook-id"] for message in receiver.received]
    assert len(ids) == len(set(ids)) == 12
    assert [d.attempt_count for d in deliveries] == [1] * 12


async def test_concurrent_claims_never_take_the_same_delivery(settings: Settings) -> None:
    """Two instances claiming at once get disjoint sets: on PostgreSQL the second skips rows the first
    has locked (SKIP LOCKED) without waiting; on SQLite it waits for the one writer, then skips the leases."""
    engine = make_engine(settings.database_url)
    sessions = make_sessions(engine)
    try:
        owner = await make_user(sessions, "Owner")
        async with sessions.begin() as session:
            endpoint = WebhookEndpoint(owner_id=owner.id, url="http://127.0.0.1:9/", events=["task.created"],
                                       secret="whsec_x", enabled=True)
            session.add(endpoint)
            await session.flush()
            for n in range(6):
                event = WebhookEvent(message_id=f"msg_{n}", type="task.created", payload="{}")
                session.add(event)
                await session.flush()
                session.add(WebhookDelivery(event_id=event.id, endpoint_id=endpoint.id, next_attempt_at=utcnow()))

        async def claim(session: Any) -> list[int]:
            return await leases.claim(
                session, WebhookDelivery, [WebhookDelivery.status == "pending"], [WebhookDelivery.id],
                limit=4, now=utcnow(), lease=timedelta(seconds=60), token=leases.new_token(),
            )

        first_session = sessions()
        await first_session.begin()
        first = await claim(first_session)  # uncommitted: its rows stay locked
        second_claim = asyncio.ensure_future(_claim_in_own_transaction(sessions, claim))
        if engine.dialect.name == "postgresql":
            second = await asyncio.wait_for(second_claim, 10)  # does not wait for the first
            await first_session.commit()
        else:
            await asyncio.sleep(0.2)
            assert not second_claim.done(), "SQLite's second writer must wait for the first"
            await first_session.commit()
            second = await asyncio.wait_for(second_claim, 10)
        await first_session.close()
    finally:
        await engine.dispose()
    assert len(first) == 4 and len(second) == 2
    assert not set(first) & set(second)


async def _claim_in_own_transaction(sessions: Sessions, claim: Callable[..., Any]) -> list[int]:
    async with sessions.begin() as session:
        result: list[int] = await claim(session)
        return result

