"""Outbound webhooks in GraphQL: endpoints, their deliveries and attempts, and the mutations that
manage them. Everything here needs the `webhooks` scope and shows only the viewer's own endpoints."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import strawberry
from strawberry.permission import PermissionExtension
from strawberry.types import Info

import resolvers.webhooks
from auth import scopes
from auth.permissions import HasScope
from db.webhooks import DeliveryStatus, endpoint_events
from db.webhooks import WebhookAttempt as AttemptRow  # row types: Strawberry resolves Private[...] too
from db.webhooks import WebhookDelivery as DeliveryRow  # row types: Strawberry resolves Private[...] too
from db.webhooks import WebhookEndpoint as EndpointRow  # row types: Strawberry resolves Private[...] too
from resolvers.context import Context
from resolvers.errors import BadUserInput
from schema.errors import UserError
from schema.inputs import page_args
from schema.relay import Connection, Node, connection, decode_id, encode_id

NEEDS_SCOPE = [PermissionExtension([HasScope(scopes.WEBHOOKS)])]


@strawberry.enum(description="What an endpoint can subscribe to; the payload's `type` is the value in parentheses.")
class WebhookEventType(enum.Enum):
    TASK_CREATED = "task.created"
    TASK_UPDATED = "task.updated"
    TASK_DELETED = "task.deleted"
    DOCUMENT_UPDATED = "document.updated"
    DOCUMENT_SHARED = "document.shared"
    WEBHOOK_ENDPOINT_DISABLED = strawberry.enum_value(
        "webhook_endpoint.disabled", description="Another of your endpoints was disabled after failing for 3 days."
    )


@strawberry.enum
class WebhookDeliveryStatus(enum.Enum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = strawberry.enum_value("failed", description="Given up; `redeliverWebhook` sends it again.")


@strawberry.enum
class WebhookAttemptOutcome(enum.Enum):
    SUCCEEDED = strawberry.enum_value("succeeded", description="The endpoint answered 2xx.")
    FAILED = strawberry.enum_value("failed", description="Any other status (redirects are not followed).")
    TIMED_OUT = "timed_out"
    UNREACHABLE = strawberry.enum_value("unreachable", description="DNS, connection or TLS failure.")
    BLOCKED = strawberry.enum_value("blocked", description="The address is private or loopback (production).")


@strawberry.type(description="One try at sending a delivery.")
class WebhookAttempt:
    number: int
    attempted_at: datetime
    outcome: WebhookAttemptOutcome
    response_status: int | None = strawberry.field(description="The HTTP status, when there was an answer.")
    latency_ms: int
    error: str | None

    @classmethod
    def from_row(cls, row: AttemptRow) -> WebhookAttempt:
        return cls(
            number=row.number, attempted_at=row.attempted_at, outcome=WebhookAttemptOutcome(row.outcome),
            response_status=row.response_status, latency_ms=row.latency_ms, error=row.error,
        )


@strawberry.type(description="One event on its way to one endpoint, retried with backoff until it succeeds.")
class WebhookDelivery(Node):
    id: strawberry.ID
    status: WebhookDeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None = strawberry.field(description="When the next try is due, while pending.")
    created_at: datetime
    _row: strawberry.Private[DeliveryRow]

    @classmethod
    def from_row(cls, row: DeliveryRow) -> WebhookDelivery:
        pending = row.status == DeliveryStatus.PENDING.value
        return cls(
            id=encode_id("WebhookDelivery", row.id), status=WebhookDeliveryStatus(row.status),
            attempt_count=row.attempt_count, next_attempt_at=row.next_attempt_at if pending else None,
            created_at=row.created_at, _row=row,
        )

    @strawberry.field(description="The `webhook-id` header: the same on every attempt, for deduplication.")
    async def event_id(self, info: Info[Context, Any]) -> str:
        return (await resolvers.webhooks.event_of(info.context, self._row)).message_id

    @strawberry.field
    async def event_type(self, info: Info[Context, Any]) -> WebhookEventType:
        return WebhookEventType((await resolvers.webhooks.event_of(info.context, self._row)).type)

    @strawberry.field(description="The exact JSON body that is signed and sent.")
    async def payload(self, info: Info[Context, Any]) -> str:
        return (await resolvers.webhooks.event_of(info.context, self._row)).payload

    @strawberry.field(description="Every attempt so far, first to last.")
    async def attempts(self, info: Info[Context, Any]) -> list[WebhookAttempt]:
        return [WebhookAttempt.from_row(row) for row in await resolvers.webhooks.attempts(info.context, self._row.id)]

    @strawberry.field
    async def endpoint(self, info: Info[Context, Any]) -> WebhookEndpoint:
        return WebhookEndpoint.from_row(await resolvers.webhooks.visible_endpoint(info.context, self._row.endpoint_id))


@strawberry.type(description="A URL of yours that receives signed events (Standard Webhooks).")
class WebhookEndpoint(Node):
    id: strawberry.ID
    url: str
    description: str
    events: list[WebhookEventType]
    enabled: bool
    disabled_at: datetime | None
    disabled_reason: str | None
    failing_since: datetime | None = strawberry.field(
        description="Set while attempts fail; after 3 days of failing the endpoint is disabled."
    )
    created_at: datetime
    _row: strawberry.Private[EndpointRow]

    @classmethod
    def from_row(cls, row: EndpointRow) -> WebhookEndpoint:
        return cls(
            id=encode_id("WebhookEndpoint", row.id), url=row.url, description=row.description,
            events=[WebhookEventType(event) for event in endpoint_events(row)], enabled=row.enabled,
            disabled_at=row.disabled_at, disabled_reason=row.disabled_reason, failing_since=row.failing_since,
            created_at=row.created_at, _row=row,
        )

    @strawberry.field(description="Newest first.")
    async def deliveries(
        self, info: Info[Context, Any],
        first: int | None = None, after: str | None = None, last: int | None = None, before: str | None = None,
        status: WebhookDeliveryStatus | None = None,
    ) -> Connection[WebhookDelivery]:
        page = await resolvers.webhooks.deliveries(
            info.context, self._row.id, page_args(first, after, last, before), status.value if status else None
        )
        return connection(page, WebhookDelivery.from_row)


async def webhook_node(ctx: Context, type_name: str, pk: int) -> Node:
    """For `node(id:)`."""
    if type_name == "WebhookEndpoint":
        return WebhookEndpoint.from_row(await resolvers.webhooks.visible_endpoint(ctx, pk))
    return WebhookDelivery.from_row(await resolvers.webhooks.visible_delivery(ctx, pk))


@strawberry.type
class WebhookQueries:
    @strawberry.field(description="Your webhook endpoints, oldest first.", extensions=NEEDS_SCOPE)
    async def webhook_endpoints(
        self, info: Info[Context, Any],
        first: int | None = None, after: str | None = None, last: int | None = None, before: str | None = None,
    ) -> Connection[WebhookEndpoint]:
        page = await resolvers.webhooks.endpoints(info.context, page_args(first, after, last, before))
        return connection(page, WebhookEndpoint.from_row)

    @strawberry.field(extensions=NEEDS_SCOPE)
    async def webhook_endpoint(self, info: Info[Context, Any], id: strawberry.ID) -> WebhookEndpoint | None:
        row = await resolvers.webhooks.visible_endpoint(info.context, decode_id(id, "WebhookEndpoint"))
        return WebhookEndpoint.from_row(row)

    @strawberry.field(extensions=NEEDS_SCOPE)
    async def webhook_delivery(self, info: Info[Context, Any], id: strawberry.ID) -> WebhookDelivery | None:
        row = await resolvers.webhooks.visible_delivery(info.context, decode_id(id, "WebhookDelivery"))
        return WebhookDelivery.from_row(row)


@strawberry.input
class CreateWebhookEndpointInput:
    url: str = strawberry.field(description="https:// in production, and never a private or loopback address.")
    events: list[WebhookEventType]
    description: str = ""


@strawberry.input(description="Omitted fields stay as they are.")
class UpdateWebhookEndpointInput:
    id: strawberry.ID
    url: str | None = strawberry.UNSET
    events: list[WebhookEventType] | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    enabled: bool | None = strawberry.field(
        default=strawberry.UNSET,
        description="false stops deliveries (no new events; waiting ones wait); true resumes, also after an "
                    "automatic disable.",
    )


@strawberry.input
class WebhookEndpointIdInput:
    id: strawberry.ID


@strawberry.input
class RedeliverWebhookInput:
    delivery_id: strawberry.ID


@strawberry.type
class WebhookEndpointPayload:
    endpoint: WebhookEndpoint | None
    user_errors: list[UserError]


@strawberry.type
class WebhookSecretPayload:
    endpoint: WebhookEndpoint | None
    secret: str | None = strawberry.field(
        description="The signing secret (`whsec_…`). Shown only in this response: store it now."
    )
    user_errors: list[UserError]


@strawberry.type
class DeleteWebhookEndpointPayload:
    deleted_webhook_endpoint_id: strawberry.ID | None
    user_errors: list[UserError]


@strawberry.type
class RedeliverWebhookPayload:
    delivery: WebhookDelivery | None
    user_errors: list[UserError]


def _changes(input: UpdateWebhookEndpointInput) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name in ("url", "description", "enabled"):
        if (value := getattr(input, name)) is not strawberry.UNSET:
            changes[name] = value
    if input.events is not strawberry.UNSET:
        changes["events"] = [event.value for event in input.events] if input.events is not None else None
    return changes


def _secret_failed(exc: BadUserInput) -> WebhookSecretPayload:
    return WebhookSecretPayload(endpoint=None, secret=None, user_errors=[UserError.from_exception(exc)])


@strawberry.type
class WebhookMutations:
    @strawberry.mutation(description="Returns the signing secret, once.", extensions=NEEDS_SCOPE)
    async def create_webhook_endpoint(
        self, info: Info[Context, Any], input: CreateWebhookEndpointInput
    ) -> WebhookSecretPayload:
        try:
            row, secret = await resolvers.webhooks.create_endpoint(
                info.context, input.url, [event.value for event in input.events], input.description
            )
        except BadUserInput as exc:
            return _secret_failed(exc)
        return WebhookSecretPayload(endpoint=WebhookEndpoint.from_row(row), secret=secret, user_errors=[])

    @strawberry.mutation(extensions=NEEDS_SCOPE)
    async def update_webhook_endpoint(
        self, info: Info[Context, Any], input: UpdateWebhookEndpointInput
    ) -> WebhookEndpointPayload:
        try:
            endpoint_id = decode_id(input.id, "WebhookEndpoint")
            row = await resolvers.webhooks.update_endpoint(info.context, endpoint_id, _changes(input))
        except BadUserInput as exc:
            return WebhookEndpointPayload(endpoint=None, user_errors=[UserError.from_exception(exc)])
        return WebhookEndpointPayload(endpoint=WebhookEndpoint.from_row(row), user_errors=[])

    @strawberry.mutation(
        description="A new signing secret, returned once; the old one also signs for 24 hours more.",
        extensions=NEEDS_SCOPE,
    )
    async def rotate_webhook_secret(
        self, info: Info[Context, Any], input: WebhookEndpointIdInput
    ) -> WebhookSecretPayload:
        try:
            row, secret = await resolvers.webhooks.rotate_secret(info.context, decode_id(input.id, "WebhookEndpoint"))
        except BadUserInput as exc:
            return _secret_failed(exc)
        return WebhookSecretPayload(endpoint=WebhookEndpoint.from_row(row), secret=secret, user_errors=[])

    @strawberry.mutation(extensions=NEEDS_SCOPE)
    async def delete_webhook_endpoint(
        self, info: Info[Context, Any], input: WebhookEndpointIdInput
    ) -> DeleteWebhookEndpointPayload:
        try:
            deleted = await resolvers.webhooks.delete_endpoint(info.context, decode_id(input.id, "WebhookEndpoint"))
        except BadUserInput as exc:
            return DeleteWebhookEndpointPayload(deleted_webhook_endpoint_id=None,
                                                user_errors=[UserError.from_exception(exc)])
        return DeleteWebhookEndpointPayload(deleted_webhook_endpoint_id=encode_id("WebhookEndpoint", deleted),
                                            user_errors=[])

    @strawberry.mutation(description="Send a delivery again now, whatever its status.", extensions=NEEDS_SCOPE)
    async def redeliver_webhook(
        self, info: Info[Context, Any], input: RedeliverWebhookInput
    ) -> RedeliverWebhookPayload:
        try:
            delivery_id = decode_id(input.delivery_id, "WebhookDelivery", "deliveryId")
            row = await resolvers.webhooks.redeliver(info.context, delivery_id)
        except BadUserInput as exc:
            return RedeliverWebhookPayload(delivery=None, user_errors=[UserError.from_exception(exc)])
        return RedeliverWebhookPayload(delivery=WebhookDelivery.from_row(row), user_errors=[])
