"""Webhook reads, batched and bound to the viewer: only the owner of an endpoint sees it, its
deliveries and their attempts; anything else loads as `None` (NOT_FOUND upstream)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from db.engine import Sessions
from db.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from loaders.batching import forget, many_per_key, one_per_key, scalars


async def _endpoints(sessions: Sessions, viewer_id: int, ids: Sequence[int]) -> list[WebhookEndpoint | None]:
    statement = select(WebhookEndpoint).where(WebhookEndpoint.id.in_(ids), WebhookEndpoint.owner_id == viewer_id)
    return one_per_key(ids, await scalars(sessions, statement), lambda row: row.id)


async def _deliveries(sessions: Sessions, viewer_id: int, ids: Sequence[int]) -> list[WebhookDelivery | None]:
    statement = (
        select(WebhookDelivery)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.id.in_(ids), WebhookEndpoint.owner_id == viewer_id)
    )
    return one_per_key(ids, await scalars(sessions, statement), lambda row: row.id)


async def _events(sessions: Sessions, ids: Sequence[int]) -> list[WebhookEvent | None]:
    # Only reached through a delivery the viewer may see.
    return one_per_key(ids, await scalars(sessions, select(WebhookEvent).where(WebhookEvent.id.in_(ids))),
                       lambda row: row.id)


async def _attempts(sessions: Sessions, delivery_ids: Sequence[int]) -> list[list[WebhookAttempt]]:
    statement = (
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(delivery_ids))
        .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
    )
    return many_per_key(delivery_ids, await scalars(sessions, statement), lambda row: row.delivery_id)


class WebhookLoaders:
    def __init__(self, sessions: Sessions, viewer_id: int) -> None:
        self.endpoint_by_id = DataLoader[int, WebhookEndpoint | None](partial(_endpoints, sessions, viewer_id))
        self.delivery_by_id = DataLoader[int, WebhookDelivery | None](partial(_deliveries, sessions, viewer_id))
        self.event_by_id = DataLoader[int, WebhookEvent | None](partial(_events, sessions))
        self.attempts_by_delivery = DataLoader[int, list[WebhookAttempt]](partial(_attempts, sessions))

    def forget_endpoint(self, endpoint_id: int) -> None:
        forget(self.endpoint_by_id, endpoint_id)

    def forget_delivery(self, delivery_id: int) -> None:
        forget(self.delivery_by_id, delivery_id)
        forget(self.attempts_by_delivery, delivery_id)
