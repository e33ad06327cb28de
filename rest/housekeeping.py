"""Periodic clean-up of what is stored for a while: expired idempotency keys, sign-in entries and
revocations, old finished webhook deliveries (with their attempts and events) and old inbound receipts.

Runs as a worker job at most every `interval`; deleting is idempotent, so several instances doing
it at once only repeat each other.
"""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import delete, select

from auth import database_store, revocation_records
from db.engine import Sessions
from db.models import utcnow
from db.webhooks import DeliveryStatus, InboundWebhook, ReceiptStatus, WebhookDelivery, WebhookEvent
from rest.idempotency_store import delete_expired

DELIVERY_RETENTION = timedelta(days=30)
# Far longer than the 5-minute signature window: a replay is always caught by the stored id.
RECEIPT_RETENTION = timedelta(days=7)


class Housekeeping:
    def __init__(self, sessions: Sessions, *, interval_seconds: float = 600.0) -> None:
        self.sessions = sessions
        self.interval_seconds = interval_seconds
        self._next_run = 0.0

    async def run_once(self) -> int:
        """Always 0: clean-up is never a reason for the worker to skip its sleep."""
        if time.monotonic() < self._next_run:
            return 0
        self._next_run = time.monotonic() + self.interval_seconds
        await self.clean()
        return 0

    async def clean(self) -> None:
        now = utcnow()
        await delete_expired(self.sessions)
        await database_store.delete_expired(self.sessions)
        await revocation_records.delete_expired(self.sessions)
        async with self.sessions.begin() as session:
            await session.execute(delete(WebhookDelivery).where(
                WebhookDelivery.status != DeliveryStatus.PENDING.value,
                WebhookDelivery.updated_at < now - DELIVERY_RETENTION,
            ))
            await session.execute(delete(WebhookEvent).where(
                WebhookEvent.created_at < now - DELIVERY_RETENTION,
                ~WebhookEvent.id.in_(select(WebhookDelivery.event_id)),
            ))
            await session.execute(delete(InboundWebhook).where(
                InboundWebhook.status != ReceiptStatus.PENDING.value,
                InboundWebhook.received_at < now - RECEIPT_RETENTION,
            ))
