"""The transactional outbox: outbound webhook events written in the caller's own transaction.

A mutation that changes a task or a document calls one of these with the session it writes
with, before it commits. The event and one pending delivery per interested endpoint are then
committed together with the change, or not at all: a crash right after the commit loses no event
(the worker finds the deliveries later), and a rolled-back change sends none.

Who is interested: the enabled endpoints, subscribed to the event type, of the users who may see
the object at that moment (for a task: its owner, its assignee and its document's collaborators).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Document, DocumentCollaborator, Task, TaskLabel, TaskPriority, utcnow
from db.records import TaskRecord
from db.webhooks import WebhookDelivery, WebhookEndpoint, WebhookEvent, endpoint_events
from resolvers.global_ids import encode_id

TASK_CREATED = "task.created"
TASK_UPDATED = "task.updated"
TASK_DELETED = "task.deleted"
DOCUMENT_UPDATED = "document.updated"
DOCUMENT_SHARED = "document.shared"
ENDPOINT_DISABLED = "webhook_endpoint.disabled"
EVENT_TYPES = (TASK_CREATED, TASK_UPDATED, TASK_DELETED, DOCUMENT_UPDATED, DOCUMENT_SHARED, ENDPOINT_DISABLED)


def _time(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _optional_id(type_name: str, pk: int | None) -> str | None:
    return encode_id(type_name, pk) if pk is not None else None


def new_message_id() -> str:
    """The `webhook-id`: unique per event, the same on every retry, so receivers can deduplicate."""
    return f"msg_{secrets.token_hex(16)}"


async def _collaborators(session: AsyncSession, document_id: int | None) -> set[int]:
    if document_id is None:
        return set()
    found = await session.scalars(
        select(DocumentCollaborator.user_id).where(DocumentCollaborator.document_id == document_id)
    )
    return set(found.all())


async def _task_audience(session: AsyncSession, task: TaskRecord) -> set[int]:
    audience = {task.owner_id} | await _collaborators(session, task.document_id)
    if task.assignee_id is not None:
        audience.add(task.assignee_id)
    return audience


def task_data(task: Task, labels: list[str]) -> dict[str, Any]:
    """A task as webhook payloads show it: the names and IDs GraphQL clients already know."""
    return {
        "id": encode_id("Task", task.id),
        "title": task.title,
        "description": task.description,
        "status": task.status,
        "priority": TaskPriority(task.priority).name,
        "dueAt": _time(task.due_at),
        "labels": labels,
        "ownerId": encode_id("User", task.owner_id),
        "assigneeId": _optional_id("User", task.assignee_id),
        "documentId": _optional_id("Document", task.document_id),
        "createdAt": _time(task.created_at),
        "updatedAt": _time(task.updated_at),
    }


def document_data(document: Document) -> dict[str, Any]:
    return {
        "id": encode_id("Document", document.id),
        "title": document.title,
        "version": document.version,
        "ownerId": encode_id("User", document.owner_id),
        "createdAt": _time(document.created_at),
        "updatedAt": _time(document.updated_at),
    }


async def record(
    session: AsyncSession,
    event_type: str,
    data: dict[str, Any] | Callable[[], Awaitable[dict[str, Any]]],
    audience: Iterable[int],
) -> WebhookEvent | None:
    """Queue `event_type` for the audience's subscribed endpoints; `None` when nobody listens.

    `data` may be a coroutine function, called only when some endpoint listens: most changes have
    no listener, and then they cost one query here.
    """
    users = set(audience)
    if not users:
        return None
    candidates = await session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.owner_id.in_(users), WebhookEndpoint.enabled.is_(True))
        .order_by(WebhookEndpoint.id)
    )
    # Subscriptions are a JSON list; filtering in Python keeps one query on both databases.
    endpoints = [endpoint for endpoint in candidates.all() if event_type in endpoint_events(endpoint)]
    if not endpoints:
        return None
    now = utcnow()
    body = data if isinstance(data, dict) else await data()
    payload = {"type": event_type, "timestamp": _time(now), "data": body}
    event = WebhookEvent(
        message_id=new_message_id(), type=event_type, payload=orjson.dumps(payload).decode(), created_at=now
    )
    session.add(event)
    await session.flush()
    session.add_all(
        WebhookDelivery(event_id=event.id, endpoint_id=endpoint.id, next_attempt_at=now) for endpoint in endpoints
    )
    return event


async def _labels(session: AsyncSession, task_id: int) -> list[str]:
    found = await session.scalars(select(TaskLabel.label).where(TaskLabel.task_id == task_id).order_by(TaskLabel.label))
    return list(found.all())


async def task_changed(session: AsyncSession, event_type: str, task: Task, labels: list[str] | None = None) -> None:
    """`task.created` or `task.updated`, for everyone who may see the task after the change."""
    await session.flush()  # defaults (timestamps, ids) must be in place before they are serialised

    async def data() -> dict[str, Any]:
        return {"task": task_data(task, labels if labels is not None else await _labels(session, task.id))}

    await record(session, event_type, data, await _task_audience(session, task))


async def task_deleted(session: AsyncSession, task: TaskRecord) -> None:
    """Call before the row goes: the audience is whoever could see the task until now."""
    await record(session, TASK_DELETED, {"task": {"id": encode_id("Task", task.id)}},
                 await _task_audience(session, task))


async def document_changed(
    session: AsyncSession, event_type: str, document_id: int, extra: dict[str, Any] | None = None
) -> None:
    """`document.updated` or `document.shared`, for the document's collaborators after the change."""
    await session.flush()

    async def data() -> dict[str, Any]:
        document = await session.get(Document, document_id, populate_existing=True)
        assert document is not None  # changed in this very transaction
        return {"document": document_data(document), **(extra or {})}

    await record(session, event_type, data, await _collaborators(session, document_id))


async def endpoint_disabled(session: AsyncSession, endpoint: WebhookEndpoint) -> None:
    """Tells the owner's other endpoints (those subscribed to it) that one of theirs was switched off."""
    data = {
        "endpoint": {
            "id": encode_id("WebhookEndpoint", endpoint.id),
            "url": endpoint.url,
            "disabledAt": _time(endpoint.disabled_at),
            "reason": endpoint.disabled_reason,
        }
    }
    await record(session, ENDPOINT_DISABLED, data, [endpoint.owner_id])
