"""Applying stored inbound webhooks, after the sender already has its 2xx.

Each receipt is applied exactly once: the work and the receipt's new status commit in one
transaction (the resolvers' own transactions become savepoints inside it), so a crash in between
undoes both and the receipt is simply picked up again when its lease runs out. Events that cannot
be applied (an unknown task, a blank title, no right to change it) end as `failed` with the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker

import resolvers.tasks
from auth import scopes
from db.engine import Sessions, make_transaction_engine
from db.models import TaskPriority, utcnow
from db.webhooks import InboundWebhook, ReceiptStatus
from resolvers.context import Context, Limits
from resolvers.errors import DomainError
from resolvers.global_ids import decode_id, encode_id
from resolvers.inbound import acting_context
from rest import leases
from rest.inbound_events import TaskCloseEvent, TaskCreateEvent, TaskUpdateEvent, inbound_event
from rest.webhook_sources import WebhookSource

log = logging.getLogger("tandem.webhooks.inbound")

MAX_ATTEMPTS = 5  # for unexpected errors only; a domain error fails the receipt at once
RESULT_MAX = 500
TASK_SCOPES = (scopes.TASKS_READ, scopes.TASKS_WRITE)


def _optional_id(value: str | None, type_name: str, field: str) -> int | None:
    return None if value is None else decode_id(value, type_name, field)


def _update_changes(event: TaskUpdateEvent) -> dict[str, Any]:
    data = event.data
    sent = data.model_fields_set
    changes: dict[str, Any] = {}
    for name in ("title", "description", "status", "labels"):
        if name in sent:
            changes[name] = getattr(data, name)
    if "priority" in sent:
        changes["priority"] = TaskPriority[data.priority].value if data.priority else None
    if "dueAt" in sent:
        changes["due_at"] = data.dueAt
    if "assigneeId" in sent:
        changes["assignee_id"] = _optional_id(data.assigneeId, "User", "assigneeId")
    if "documentId" in sent:
        changes["document_id"] = _optional_id(data.documentId, "Document", "documentId")
    return changes


async def apply_event(ctx: Context, event: TaskCreateEvent | TaskUpdateEvent | TaskCloseEvent) -> str:
    """Do what the event says, as the context's user; the changed task's global ID."""
    if isinstance(event, TaskCreateEvent):
        data = event.data
        draft = resolvers.tasks.TaskDraft(
            title=data.title, description=data.description, status=data.status,
            priority=TaskPriority[data.priority].value, due_at=data.dueAt, labels=list(data.labels),
            assignee_id=_optional_id(data.assigneeId, "User", "assigneeId"),
            document_id=_optional_id(data.documentId, "Document", "documentId"),
        )
        task = await resolvers.tasks.create_task(ctx, draft)
    elif isinstance(event, TaskUpdateEvent):
        task = await resolvers.tasks.update_task(ctx, decode_id(event.data.id, "Task"), _update_changes(event))
    else:
        task = await resolvers.tasks.update_task(ctx, decode_id(event.data.id, "Task"), {"status": "DONE"})
    return encode_id("Task", task.id)


@dataclass(frozen=True, slots=True)
class InboundConfig:
    lease_seconds: float = 120.0
    batch_size: int = 20


class InboundProcessor:
    def __init__(
        self, sessions: Sessions, database_url: str, sources: dict[str, WebhookSource], limits: Limits,
        config: InboundConfig,
    ) -> None:
        self.sessions = sessions  # for claims: an idle poll only reads
        self.engine = make_transaction_engine(database_url)  # savepoints on SQLite too; connects lazily
        self.sources = sources
        self.limits = limits
        self.config = config

    async def close(self) -> None:
        await self.engine.dispose()

    async def run_once(self) -> int:
        token = leases.new_token()
        now = utcnow()
        async with self.sessions.begin() as session:
            ids = await leases.claim(
                session, InboundWebhook, [InboundWebhook.status == ReceiptStatus.PENDING.value],
                [InboundWebhook.received_at, InboundWebhook.id],
                limit=self.config.batch_size, now=now, lease=timedelta(seconds=self.config.lease_seconds), token=token,
            )
        for receipt_id in ids:
            try:
                await self._process(receipt_id, token)
            except Exception:
                log.exception("applying inbound webhook %s failed", receipt_id)
                await self._count_failure(receipt_id, token)
        return len(ids)

    async def _process(self, receipt_id: int, token: str) -> None:
        async with self.engine.connect() as connection, connection.begin():
            # One outer transaction; every session the resolvers open joins it as a savepoint.
            sessions = async_sessionmaker(bind=connection, expire_on_commit=False,
                                          join_transaction_mode="create_savepoint")
            async with sessions() as session:
                receipt = await session.get(InboundWebhook, receipt_id)
                if receipt is None or receipt.lock_token != token:
                    return  # our lease ran out and another instance has it
                await session.execute(
                    update(InboundWebhook).where(InboundWebhook.id == receipt_id).values(
                        status=ReceiptStatus.PROCESSED.value, processed_at=utcnow(),
                        attempt_count=InboundWebhook.attempt_count + 1, locked_until=None, lock_token=None,
                    )
                )
                source, payload = receipt.source, receipt.payload
                await session.commit()  # a savepoint release; the outer transaction is still open
            status, result = await self._apply(sessions, receipt_id, source, payload)
            async with sessions.begin() as session:
                await session.execute(
                    update(InboundWebhook).where(InboundWebhook.id == receipt_id)
                    .values(status=status.value, result=result[:RESULT_MAX])
                )

    async def _apply(self, sessions: Any, receipt_id: int, source_name: str, payload: str) -> tuple[ReceiptStatus, str]:
        source = self.sources.get(source_name)
        if source is None:
            return ReceiptStatus.FAILED, f"The source {source_name!r} is no longer configured."
        try:
            event = inbound_event.validate_json(payload)
        except ValidationError:
            return ReceiptStatus.FAILED, "The stored payload is no longer a valid event."
        try:
            ctx = await acting_context(sessions, source.act_as, TASK_SCOPES, source=source.name,
                                       request_id=f"webhook-{receipt_id}", limits=self.limits)
            return ReceiptStatus.PROCESSED, await apply_event(ctx, event)
        except DomainError as exc:
            return ReceiptStatus.FAILED, f"{exc.code}: {exc.message}"

    async def _count_failure(self, receipt_id: int, token: str) -> None:
        """An unexpected error: try again after the lease, and give up after `MAX_ATTEMPTS`."""
        async with self.sessions.begin() as session:
            receipt = await session.get(InboundWebhook, receipt_id, with_for_update=True)
            if receipt is None or receipt.lock_token != token:
                return
            receipt.attempt_count += 1
            if receipt.attempt_count >= MAX_ATTEMPTS:
                receipt.status = ReceiptStatus.FAILED.value
                receipt.result = "INTERNAL_SERVER_ERROR: applying this event kept failing."
                receipt.locked_until = receipt.lock_token = None
