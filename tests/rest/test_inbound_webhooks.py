"""`POST /webhooks/{source}`: signed events are stored, answered at once and applied afterwards;
replays are acknowledged without being applied twice; forged, stale, oversized and malformed
requests are refused with their exact codes, and nothing about them is stored."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from standardwebhooks import Webhook

from app.settings import Settings
from db.engine import Sessions
from db.models import Task, User
from db.webhooks import InboundWebhook
from resolvers.context import Limits
from rest.inbound_processing import InboundConfig, InboundProcessor
from rest.webhook_sources import by_name
from tests.conftest import global_id, serve
from tests.factories import make_task
from tests.rest.conftest import SECRET_A, SECRET_B, SOURCE, eventually, make_bot, own_app

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
WRONG_SECRET = "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
_counter = iter(range(1, 10**9))


def signed(event: dict[str, Any] | bytes, secret: str = SECRET_A, *, message_id: str | None = None,
           at: float | None = None) -> tuple[bytes, dict[str, str]]:
    """A body and the Standard Webhooks headers for it, signed by the reference library."""
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    message_id = message_id or f"msg_test_{next(_counter)}"
    timestamp = datetime.fromtimestamp(int(at if at is not None else time.time()), UTC)
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, timestamp, body.decode("utf-8", "replace")),
        "content-type": "application/json",
    }
    return body, headers


async def post(client: httpx.AsyncClient, body: bytes, headers: dict[str, str], source: str = SOURCE) -> httpx.Response:
    return await client.post(f"/webhooks/{source}", content=body, headers=headers)


def create(title: str = "From the CRM", **data: Any) -> dict[str, Any]:
    return {"type": "task.create", "timestamp": "2030-01-01T00:00:00Z", "data": {"title": title, **data}}


async def tasks_of(sessions: Sessions, user: User) -> list[Task]:
    async with sessions() as session:
        return list((await session.scalars(select(Task).where(Task.owner_id == user.id).order_by(Task.id))).all())


async def receipts(sessions: Sessions) -> list[InboundWebhook]:
    async with sessions() as session:
        return list((await session.scalars(select(InboundWebhook).order_by(InboundWebhook.id))).all())


def error_of(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details", "requestId"}
    assert body["error"]["requestId"] == response.headers["x-request-id"]
    code: str = body["error"]["code"]
    return code


# --- accepted -------------------------------------------------------------------------------------


async def test_signed_event_is_stored_then_applied(client: httpx.AsyncClient, sessions: Sessions, bot: User) -> None:
    body, headers = signed(create(labels=["crm"], priority="HIGH", dueAt="2030-02-01T09:00:00+01:00"))
    response = await post(client, body, headers)
    assert response.status_code == 202
    assert response.json() == {"id": headers["webhook-id"], "status": "accepted"}
    [task] = await eventually(lambda: tasks_of(sessions, bot), "the task created by the event")
    assert (task.title, task.priority, task.due_at.isoformat()) == ("From the CRM", 3, "2030-02-01T08:00:00+00:00")
    [receipt] = await eventually(
        lambda: _when_done(sessions), "the receipt marked processed")
    assert (receipt.status, receipt.result) == ("processed", global_id("Task", task.id))


async def _when_done(sessions: Sessions) -> list[InboundWebhook] | None:
    found = await receipts(sessions)
    return found if found and all(r.status != "pending" for r in found) else None


async def test_replay_is_acknowledged_but_applied_once(client: httpx.AsyncClient, sessions: Sessions, bot: User) -> None:
    event = create("Only once")
    body, headers = signed(event, message_id="msg_replayed")
    assert (await post(client, body, headers)).status_code == 202
    await eventually(lambda: _when_done(sessions), "the first delivery applied")
    # The sender retries (it never saw our answer): same id, freshly signed, maybe the other secret.
    again_body, again_headers = signed(event, SECRET_B, message_id="msg_replayed")
    replay = await post(client, again_body, again_headers)
    assert (replay.status_code, replay.json()) == (200, {"id": "msg_replayed", "status": "duplicate"})
    assert [t.title for t in await tasks_of(sessions, bot)] == ["Only once"]
    assert len(await receipts(sessions)) == 1


async def test_update_and_close_change_the_task(client: httpx.AsyncClient, sessions: Sessions, bot: User) -> None:
    task = await make_task(sessions, bot, "Draft", labels=["a"])
    task_id = global_id("Task", task.id)
    update = {"type": "task.update", "data": {"id": task_id, "title": "Final", "labels": None, "dueAt": None}}
    assert (await post(client, *signed(update))).status_code == 202
    assert (await post(client, *signed({"type": "task.close", "data": {"id": task_id}}))).status_code == 202
    await eventually(lambda: _when_done(sessions), "both events applied")
    [changed] = await tasks_of(sessions, bot)
    assert (changed.title, changed.status, changed.description) == ("Final", "DONE", "")
    assert [r.status for r in await receipts(sessions)] == ["processed", "processed"]


async def test_events_that_cannot_be_applied_fail_with_the_reason(
    client: httpx.AsyncClient, sessions: Sessions, bot: User, alice: User
) -> None:
    private = await make_task(sessions, alice, "Not the bot's")
    events = [
        {"type": "task.close", "data": {"id": global_id("Task", 999_999)}},
        {"type": "task.close", "data": {"id": global_id("Task", private.id)}},
        {"type": "task.update", "data": {"id": "not-an-id"}},
        create("   "),
    ]
    for event in events:
        assert (await post(client, *signed(event))).status_code == 202
    await eventually(lambda: _when_done(sessions), "all events handled")
    results = [(r.status, r.result) for r in await receipts(sessions)]
    assert results == [
        ("failed", "NOT_FOUND: Task not found."),
        ("failed", "NOT_FOUND: Task not found."),  # someone else's task: the bot cannot see it either
        ("failed", "BAD_USER_INPUT: `id` is not a valid ID."),
        ("failed", "BAD_USER_INPUT: `title` cannot be blank."),
    ]
    assert await tasks_of(sessions, bot) == []


async def test_a_missing_acting_user_fails_the_event(client: httpx.AsyncClient, sessions: Sessions) -> None:
    assert (await post(client, *signed(create()))).status_code == 202
    [receipt] = await eventually(lambda: _when_done(sessions), "the event handled")
    assert (receipt.status, receipt.result) == (
        "failed", "NOT_FOUND: The user this source acts as (webhook-bot@example.test) does not exist.")


@SQLITE_ONLY
async def test_the_answer_comes_before_the_work(settings: Settings) -> None:
    """With no worker running the event is stored and answered, and nothing is applied yet; a worker
    applies it later (here one round of the same processor that the app's worker runs)."""
    async with own_app(settings.model_copy(update={"webhook_worker": False})) as own:
        bot = await make_bot(own.sessions)
        body, headers = signed(create("Later"))
        assert (await post(own.http, body, headers)).status_code == 202
        assert await tasks_of(own.sessions, bot) == []
        processor = InboundProcessor(own.sessions, settings.database_url, by_name(settings.webhook_sources),
                                     Limits(), InboundConfig())
        try:
            assert await processor.run_once() == 1
            assert await processor.run_once() == 0  # nothing is applied twice
        finally:
            await processor.close()
        assert [t.title for t in await tasks_of(own.sessions, bot)] == ["Later"]


# --- refused --------------------------------------------------------------------------------------


@SQLITE_ONLY
async def test_forged_and_malformed_requests_are_refused(client: httpx.AsyncClient, sessions: Sessions) -> None:
    body, headers = signed(create())
    cases: list[tuple[str, bytes, dict[str, str], str, int, str]] = [
        ("wrong secret", *signed(create(), WRONG_SECRET), SOURCE, 401, "INVALID_SIGNATURE"),
        ("tampered body", body.replace(b"CRM", b"XRM"), headers, SOURCE, 401, "INVALID_SIGNATURE"),
        ("signature for another id", body, {**headers, "webhook-id": "msg_other"}, SOURCE, 401, "INVALID_SIGNATURE"),
        ("garbage signature", body, {**headers, "webhook-signature": "v1"}, SOURCE, 401, "INVALID_SIGNATURE"),
        ("unknown version", body, {**headers, "webhook-signature": "v9,abc"}, SOURCE, 401, "INVALID_SIGNATURE"),
        ("six minutes old", *signed(create(), at=time.time() - 360), SOURCE, 401, "TIMESTAMP_OUT_OF_TOLERANCE"),
        ("six minutes ahead", *signed(create(), at=time.time() + 360), SOURCE, 401, "TIMESTAMP_OUT_OF_TOLERANCE"),
        ("no signature", body, {k: v for k, v in headers.items() if k != "webhook-signature"}, SOURCE, 400,
         "BAD_REQUEST"),
        ("no id", body, {k: v for k, v in headers.items() if k != "webhook-id"}, SOURCE, 400, "BAD_REQUEST"),
        ("timestamp not a number", body, {**headers, "webhook-timestamp": "1e9"}, SOURCE, 400, "BAD_REQUEST"),
        ("id too long", body, {**headers, "webhook-id": "m" * 256}, SOURCE, 400, "BAD_REQUEST"),
        ("not JSON content", body, {**headers, "content-type": "text/plain"}, SOURCE, 415, "UNSUPPORTED_MEDIA_TYPE"),
        ("unknown source", body, headers, "nobody", 404, "NOT_FOUND"),
    ]
    for name, case_body, case_headers, source, status, code in cases:
        response = await post(client, case_body, case_headers, source)
        assert (response.status_code, error_of(response)) == (status, code), name
    assert await receipts(sessions) == []


@SQLITE_ONLY
async def test_signed_garbage_is_refused_with_details(client: httpx.AsyncClient, sessions: Sessions) -> None:
    cases = [
        b"not json",
        b"\xff\xfe",
        json.dumps({"type": "task.explode", "data": {}}).encode(),
        json.dumps(create(title=5)).encode(),
        json.dumps(create(priority="SOMEDAY")).encode(),
        json.dumps(create(dueAt="2030-01-01T00:00:00")).encode(),  # no offset
        json.dumps(create(labels=["x"] * 21)).encode(),
        json.dumps({"type": "task.update", "data": {"title": "no id"}}).encode(),
        json.dumps([1, 2]).encode(),
    ]
    for body in cases:
        response = await post(client, *signed(body))
        code = error_of(response)
        if body == b"\xff\xfe":  # not UTF-8: it cannot even be what the sender signed
            assert (response.status_code, code) == (401, "INVALID_SIGNATURE")
            continue
        assert (response.status_code, code) == (422, "INVALID_PAYLOAD"), body
        details = response.json()["error"]["details"]
        assert details and all(set(d) == {"field", "message"} for d in details)
    assert await receipts(sessions) == []


@SQLITE_ONLY
async def test_body_size_is_bounded(settings: Settings, sessions: Sessions) -> None:
    async with serve(settings.model_copy(update={"webhook_max_body_bytes": 1024})) as client:
        body, headers = signed(create(description="x" * 2000))
        declared = await post(client, body, headers)

        async def chunks() -> Any:  # no Content-Length: the limit must hold while streaming too
            for start in range(0, len(body), 256):
                yield body[start:start + 256]

        streamed = await client.post(f"/webhooks/{SOURCE}", content=chunks(), headers=headers)
    assert (declared.status_code, error_of(declared)) == (413, "PAYLOAD_TOO_LARGE")
    assert (streamed.status_code, error_of(streamed)) == (413, "PAYLOAD_TOO_LARGE")
    assert await receipts(sessions) == []


@SQLITE_ONLY
async def test_only_post(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/webhooks/{SOURCE}")
    assert (response.status_code, error_of(response)) == (405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == "POST"


async def _count(sessions: Sessions) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(InboundWebhook)) or 0)


async def test_an_inbound_change_goes_out_like_any_other(
    client: httpx.AsyncClient, gql: Any, bot: User, receiver: Any
) -> None:
    """Applied inside one transaction with its receipt, the change still writes its outbound event."""
    from tests.rest.conftest import create_endpoint

    await create_endpoint(gql, bot, receiver.url, ["TASK_CREATED"])
    assert (await post(client, *signed(create("Round trip")))).status_code == 202
    await eventually(receiver.count, "the outbound task.created")
    event = json.loads(receiver.received[0].body)
    assert (event["type"], event["data"]["task"]["title"]) == ("task.created", "Round trip")
