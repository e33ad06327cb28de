"""Tables for webhooks in both directions.

Outbound: an endpoint (a URL a user registered) receives events. Each event is written once, in
the same transaction as the change that caused it (the transactional outbox), with one delivery
row per endpoint that should receive it; a background worker sends deliveries and records every
attempt. Inbound: each verified request from a configured source is stored as a receipt before
we answer, and applied afterwards; `(source, message_id)` is unique, so a replay is a no-op.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.models import Base, Timestamps, UTCDateTime, utcnow


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # given up: retried for too long, or its endpoint was disabled for failing


class AttemptOutcome(enum.StrEnum):
    SUCCEEDED = "succeeded"  # a 2xx answer
    FAILED = "failed"  # any other answer (redirects included: we never follow them)
    TIMED_OUT = "timed_out"
    UNREACHABLE = "unreachable"  # DNS, connection refused, TLS
    BLOCKED = "blocked"  # the address is not allowed here (private or loopback, in production)


class ReceiptStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSED = "processed"
    FAILED = "failed"  # the event was understood but could not be applied (e.g. unknown task)


def _check_in(column: str, values: type[enum.Enum]) -> str:
    return f"{column} IN ({', '.join(repr(member.value) for member in values)})"


# Associated data of a sealed signing secret (db/secret_box.py); `previous_secret` holds a moved `secret`.
SECRET_CONTEXT = "webhook endpoint signing secret"


class WebhookEndpoint(Timestamps, Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(500), default="")
    events: Mapped[list[str]] = mapped_column(JSON)
    # Signing needs the secret itself (a hash would not do): stored encrypted with TANDEM_SECRET_KEY
    # (resolvers/secret_box.py), `whsec_` + base64 once decrypted.
    secret: Mapped[str] = mapped_column(Text)
    # After a rotation deliveries carry signatures with both secrets until this expires, so a
    # receiver can switch over without dropping a single event.
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    # Set by the first failed attempt after a success; the endpoint is disabled once it has
    # been failing for long enough (3 days by default).
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookEvent(Base):
    """One event, exactly as sent: `payload` is the body, `message_id` the `webhook-id` header."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())


class WebhookDelivery(Timestamps, Base):
    """One event on its way to one endpoint; claimed by one worker at a time through a lease."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(_check_in("status", DeliveryStatus), name="status"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A worker that claims the row sets both; if it dies, the lease runs out and another takes over.
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lock_token: Mapped[str | None] = mapped_column(String(36))


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"
    __table_args__ = (CheckConstraint(_check_in("outcome", AttemptOutcome), name="outcome"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    outcome: Mapped[str] = mapped_column(String(16))
    response_status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))


class InboundWebhook(Base):
    """A verified request from a configured source, stored before we answer 2xx."""

    __tablename__ = "inbound_webhooks"
    __table_args__ = (
        UniqueConstraint("source", "message_id"),
        CheckConstraint(_check_in("status", ReceiptStatus), name="status"),
        Index("ix_inbound_webhooks_status", "status", "received_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=ReceiptStatus.PENDING.value)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lock_token: Mapped[str | None] = mapped_column(String(36))
    result: Mapped[str | None] = mapped_column(String(500))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


def endpoint_events(endpoint: WebhookEndpoint) -> list[str]:
    events: Any = endpoint.events
    return [str(event) for event in events] if isinstance(events, list) else []
