"""Outbound webhooks against a real receiver on loopback: it fails, times out and recovers, and
every attempt is signed, ordered, logged and visible through GraphQL."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from standardwebhooks import Webhook

from db.models import User
from tests.conftest import Gql
from tests.rest.conftest import Received, Receiver, create_endpoint, endpoint_state, eventually

CREATE_TASK = """mutation($title: String!) { createTask(input: {title: $title}) { task { id } userErrors { code } } }"""


def reference_verify(secret: str, message: Received) -> Any:
    """The Standard Webhooks reference library's check (raises if the signature is wrong)."""
    return Webhook(secret).verify(message.body, message.headers)


def by_hand(secret: str, message: Received) -> str:
    """The spec's algorithm written out: base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message.headers['webhook-id']}.{message.headers['webhook-timestamp']}.".encode() + message.body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


async def test_retries_until_the_receiver_recovers(gql: Gql, alice: User, receiver: Receiver) -> None:
    receiver.script = [500, "hang", 200]  # fails, times out, recovers
    endpoint_id, secret = await create_endpoint(gql, alice, receiver.url)
    created = await gql(CREATE_TASK, {"title": "Ship it"}, as_user=alice)
    task_id = created["data"]["createTask"]["task"]["id"]

    async def delivered() -> dict[str, Any] | None:
        state = await endpoint_state(gql, alice, endpoint_id)
        nodes = state["deliveries"]["nodes"]
        return nodes[0] if nodes and nodes[0]["status"] == "SUCCEEDED" else None

    delivery = await eventually(delivered, "a successful delivery")

    assert receiver.count() == 3
    first, second, third = receiver.received
    # One event, retried: the same id and body on every attempt, each freshly signed.
    assert {m.headers["webhook-id"] for m in receiver.received} == {delivery["eventId"]}
    assert first.body == second.body == third.body
    assert int(first.headers["webhook-timestamp"]) <= int(second.headers["webhook-timestamp"]) \
        <= int(third.headers["webhook-timestamp"])
    for message in receiver.received:
        assert reference_verify(secret, message)["data"]["task"]["id"] == task_id
        assert message.headers["webhook-signature"] == by_hand(secret, message)
        assert message.headers["content-type"] == "application/json"
    payload = json.loads(third.body)
    assert payload["type"] == "task.created"
    assert payload["data"]["task"]["title"] == "Ship it"
    assert payload == json.loads(delivery["payload"])

    attempts = delivery["attempts"]
    assert [a["number"] for a in attempts] == [1, 2, 3]
    assert [a["outcome"] for a in attempts] == ["FAILED", "TIMED_OUT", "SUCCEEDED"]
    assert [a["responseStatus"] for a in attempts] == [500, None, 200]
    assert attempts[0]["error"] == "The endpoint answered 500."
    assert attempts[0]["attemptedAt"] < attempts[1]["attemptedAt"] < attempts[2]["attemptedAt"]
    assert all(isinstance(a["latencyMs"], int) and a["latencyMs"] >= 0 for a in attempts)
    assert (delivery["attemptCount"], delivery["eventType"], delivery["nextAttemptAt"]) == (3, "TASK_CREATED", None)


ALL_EVENTS = ["TASK_CREATED", "TASK_UPDATED", "TASK_DELETED", "DOCUMENT_UPDATED", "DOCUMENT_SHARED"]
UPDATE_TASK = """mutation($id: ID!) { updateTask(input: {id: $id, status: DONE, labels: ["x"]}) { userErrors { code } } }"""
DELETE_TASK = """mutation($id: ID!) { deleteTask(input: {id: $id}) { userErrors { code } } }"""
CREATE_DOCUMENT = """mutation { createDocument(input: {title: "Plan"}) { document { id } } }"""
RENAME_DOCUMENT = """mutation($id: ID!) { updateDocument(input: {id: $id, title: "Plan B"}) { userErrors { code } } }"""
SHARE_DOCUMENT = """mutation($id: ID!, $user: ID!) { shareDocument(input: {documentId: $id, userId: $user, role: VIEWER}) {
  userErrors { code } } }"""


def types_of(receiver: Receiver) -> list[str]:
    return [json.loads(message.body)["type"] for message in receiver.received]


async def test_every_mutation_sends_its_event_in_order(gql: Gql, alice: User, bob: User, receiver: Receiver) -> None:
    from tests.conftest import global_id

    await create_endpoint(gql, alice, receiver.url, ALL_EVENTS)
    task_id = (await gql(CREATE_TASK, {"title": "One"}, as_user=alice))["data"]["createTask"]["task"]["id"]
    await gql(UPDATE_TASK, {"id": task_id}, as_user=alice)
    await gql(DELETE_TASK, {"id": task_id}, as_user=alice)
    document_id = (await gql(CREATE_DOCUMENT, as_user=alice))["data"]["createDocument"]["document"]["id"]
    await gql(RENAME_DOCUMENT, {"id": document_id}, as_user=alice)
    await gql(SHARE_DOCUMENT, {"id": document_id, "user": global_id("User", bob.id)}, as_user=alice)

    await eventually(lambda: receiver.count() == 5, "five deliveries")
    assert types_of(receiver) == ["task.created", "task.updated", "task.deleted", "document.updated", "document.shared"]
    bodies = [json.loads(message.body)["data"] for message in receiver.received]
    assert bodies[1]["task"]["status"] == "DONE" and bodies[1]["task"]["labels"] == ["x"]
    assert bodies[2] == {"task": {"id": task_id}}
    assert bodies[3]["document"]["title"] == "Plan B"
    assert bodies[4]["user"] == {"id": global_id("User", bob.id)} and bodies[4]["role"] == "VIEWER"
    assert len({message.headers["webhook-id"] for message in receiver.received}) == 5


async def test_events_reach_only_those_who_may_see_the_object(
    gql: Gql, alice: User, bob: User, receiver: Receiver
) -> None:
    """Bob's endpoint hears nothing of Alice's private task, and does once he is its assignee."""
    from tests.conftest import global_id

    await create_endpoint(gql, bob, receiver.url, ["TASK_CREATED", "TASK_UPDATED"])
    task_id = (await gql(CREATE_TASK, {"title": "Private"}, as_user=alice))["data"]["createTask"]["task"]["id"]
    assign = """mutation($id: ID!, $bob: ID!) { updateTask(input: {id: $id, assigneeId: $bob}) { userErrors { code } } }"""
    await gql(assign, {"id": task_id, "bob": global_id("User", bob.id)}, as_user=alice)
    await eventually(lambda: receiver.count() >= 1, "a delivery to Bob")
    assert types_of(receiver) == ["task.updated"]


async def test_a_change_nobody_listens_to_writes_no_event(gql: Gql, alice: User, sessions: Any) -> None:
    from sqlalchemy import func, select

    from db.webhooks import WebhookEvent

    await gql(CREATE_TASK, {"title": "Quiet"}, as_user=alice)
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookEvent)) == 0
