"""Outbound webhook endpoints: register, list, change (pause, resume), rotate the secret, delete;
their deliveries and attempts, and redelivery by hand.

An endpoint belongs to the user who registered it; to anyone else it reads as NOT_FOUND. The
signing secret is shown once, when it is made (on create and on rotation).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select, update

from db.models import utcnow
from db.webhooks import (
    SECRET_CONTEXT,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from resolvers import validation
from resolvers.context import Context
from resolvers.errors import BadUserInput, NotFound
from resolvers.outbox import EVENT_TYPES
from resolvers.pagination import Page, PageArgs, paginate
from resolvers.quotas import within_quota
from resolvers.webhook_urls import check_url

MAX_ENDPOINTS_PER_USER = 20
DESCRIPTION_MAX = 500
# After a rotation the old secret keeps signing (next to the new one) for this long.
SECRET_GRACE = timedelta(hours=24)
SECRET_BYTES = 32


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _sealed(ctx: Context, secret: str) -> str:
    """What the database keeps of a signing secret: sealed with TANDEM_SECRET_KEY (db/secret_box.py)."""
    if ctx.secrets is None:
        raise RuntimeError("the context has no secret box; app/ gives every context one")
    return ctx.secrets.seal(secret, context=SECRET_CONTEXT)


def _events(values: Sequence[str] | None) -> list[str]:
    if not values:
        raise BadUserInput("Subscribe to at least one event type.", field="events")
    unknown = sorted(set(values) - set(EVENT_TYPES))
    if unknown:
        raise BadUserInput(f"Unknown event type(s): {', '.join(unknown)}.", field="events")
    return list(dict.fromkeys(values))


def _description(value: str | None) -> str:
    return validation.optional_text((value or "").strip(), "description", DESCRIPTION_MAX)


async def visible_endpoint(ctx: Context, endpoint_id: int) -> WebhookEndpoint:
    ctx.require_user()
    endpoint = await ctx.loaders.webhooks.endpoint_by_id.load(endpoint_id)
    if endpoint is None:
        raise NotFound("Webhook endpoint not found.")
    return endpoint


async def endpoints(ctx: Context, args: PageArgs) -> Page[WebhookEndpoint]:
    viewer_id = ctx.require_user()
    mine = WebhookEndpoint.owner_id == viewer_id

    async def fetch(offset: int, limit: int) -> Sequence[WebhookEndpoint]:
        async with ctx.sessions() as session:
            found = await session.scalars(
                select(WebhookEndpoint).where(mine).order_by(WebhookEndpoint.id).offset(offset).limit(limit)
            )
            return found.all()

    async def count() -> int:
        async with ctx.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(WebhookEndpoint).where(mine)) or 0)

    return await paginate(args, ctx.limits, fetch, count)


async def create_endpoint(
    ctx: Context, url: str, events: Sequence[str], description: str | None
) -> tuple[WebhookEndpoint, str]:
    """The new endpoint and its signing secret (shown this once)."""
    viewer_id = ctx.require_user()
    clean_url = await check_url(url, ctx.url_policy)
    subscribed = _events(events)
    text = _description(description)
    secret = new_secret()
    async with ctx.sessions.begin() as session:
        await within_quota(
            session, WebhookEndpoint.owner_id, viewer_id, MAX_ENDPOINTS_PER_USER,
            f"You already have {MAX_ENDPOINTS_PER_USER} webhook endpoints, the most allowed; delete one first.",
            field="url", error=BadUserInput,
        )
        endpoint = WebhookEndpoint(
            owner_id=viewer_id, url=clean_url, events=subscribed, description=text, secret=_sealed(ctx, secret),
            enabled=True,
        )
        session.add(endpoint)
    return endpoint, secret


async def update_endpoint(ctx: Context, endpoint_id: int, changes: dict[str, Any]) -> WebhookEndpoint:
    """Partial: keys present in `changes` (url, events, description, enabled) are applied.

    `enabled: false` stops deliveries: the endpoint gets no new events, and those already waiting
    stay pending; `enabled: true` sends them again and forgets any failure streak, also after the
    endpoint was disabled for failing.
    """
    await visible_endpoint(ctx, endpoint_id)
    values: dict[str, Any] = {}
    if "url" in changes:
        values["url"] = await check_url(changes["url"] or "", ctx.url_policy)
    if "events" in changes:
        values["events"] = _events(changes["events"])
    if "description" in changes:
        values["description"] = _description(changes["description"])
    if "enabled" in changes:
        validation.not_null(changes["enabled"], "enabled")
        enabled = bool(changes["enabled"])
        values["enabled"] = enabled
        values["failing_since"] = None
        values["disabled_at"] = None if enabled else utcnow()
        values["disabled_reason"] = None if enabled else "Disabled by its owner."
    if values:
        async with ctx.sessions.begin() as session:
            await session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).values(**values))
        ctx.loaders.webhooks.forget_endpoint(endpoint_id)
    return await visible_endpoint(ctx, endpoint_id)


async def rotate_secret(ctx: Context, endpoint_id: int) -> tuple[WebhookEndpoint, str]:
    """A new secret; the old one keeps signing alongside it for `SECRET_GRACE`, then stops."""
    endpoint = await visible_endpoint(ctx, endpoint_id)
    secret = new_secret()
    async with ctx.sessions.begin() as session:
        await session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id)
            .values(secret=_sealed(ctx, secret), previous_secret=endpoint.secret,
                    previous_secret_expires_at=utcnow() + SECRET_GRACE)
        )
    ctx.loaders.webhooks.forget_endpoint(endpoint_id)
    return await visible_endpoint(ctx, endpoint_id), secret


async def delete_endpoint(ctx: Context, endpoint_id: int) -> int:
    """Deletes the endpoint with its deliveries and their attempts."""
    await visible_endpoint(ctx, endpoint_id)
    async with ctx.sessions.begin() as session:
        await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))
    ctx.loaders.webhooks.forget_endpoint(endpoint_id)
    return endpoint_id


async def deliveries(
    ctx: Context, endpoint_id: int, args: PageArgs, status: str | None = None
) -> Page[WebhookDelivery]:
    """The endpoint's deliveries, newest first."""
    await visible_endpoint(ctx, endpoint_id)
    conditions = [WebhookDelivery.endpoint_id == endpoint_id]
    if status is not None:
        conditions.append(WebhookDelivery.status == status)

    async def fetch(offset: int, limit: int) -> Sequence[WebhookDelivery]:
        async with ctx.sessions() as session:
            found = await session.scalars(
                select(WebhookDelivery).where(*conditions)
                .order_by(WebhookDelivery.id.desc()).offset(offset).limit(limit)
            )
            return found.all()

    async def count() -> int:
        async with ctx.sessions() as session:
            statement = select(func.count()).select_from(WebhookDelivery).where(*conditions)
            return int(await session.scalar(statement) or 0)

    return await paginate(args, ctx.limits, fetch, count)


async def visible_delivery(ctx: Context, delivery_id: int) -> WebhookDelivery:
    ctx.require_user()
    delivery = await ctx.loaders.webhooks.delivery_by_id.load(delivery_id)
    if delivery is None:
        raise NotFound("Webhook delivery not found.")
    return delivery


async def event_of(ctx: Context, delivery: WebhookDelivery) -> WebhookEvent:
    event = await ctx.loaders.webhooks.event_by_id.load(delivery.event_id)
    assert event is not None  # a delivery's event is a non-null foreign key
    return event


async def attempts(ctx: Context, delivery_id: int) -> list[WebhookAttempt]:
    """Every attempt so far, first to last."""
    return await ctx.loaders.webhooks.attempts_by_delivery.load(delivery_id)


async def redeliver(ctx: Context, delivery_id: int) -> WebhookDelivery:
    """Send again as soon as a worker is free, whatever happened before (sent, failed or waiting)."""
    delivery = await visible_delivery(ctx, delivery_id)
    endpoint = await visible_endpoint(ctx, delivery.endpoint_id)
    if not endpoint.enabled:
        raise BadUserInput("The endpoint is disabled; enable it first.", field="deliveryId")
    async with ctx.sessions.begin() as session:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(status=DeliveryStatus.PENDING.value, next_attempt_at=utcnow())
        )
    ctx.loaders.webhooks.forget_delivery(delivery_id)
    return await visible_delivery(ctx, delivery_id)
