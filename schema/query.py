"""The `Query` root: the viewer, Relay `node`/`nodes`, and lookups and lists per domain."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import strawberry
from strawberry.permission import PermissionExtension
from strawberry.types import Info

import resolvers.documents
import resolvers.tasks
import resolvers.users
from auth import scopes
from auth.permissions import HasScope, IsAuthenticated, require_scope
from resolvers.context import Context
from resolvers.errors import BadUserInput, NotFound
from schema.directives import CONNECTION, ListSize
from schema.documents import Document
from schema.inputs import page_args, task_query
from schema.lookahead import task_relations
from schema.rate_limit import RateLimit, rate_limit
from schema.relay import Connection, Node, connection, decode_any_id, decode_id
from schema.tasks import Task, TaskFilter, TaskOrder
from schema.users import User, user_type

MAX_NODES = 100
_NODE_SCOPES = {
    "Task": scopes.TASKS_READ, "Document": scopes.DOCUMENTS_READ,
    "WebhookEndpoint": scopes.WEBHOOKS, "WebhookDelivery": scopes.WEBHOOKS,
}


async def _node(ctx: Context, global_id: str) -> Node:
    type_name, pk = decode_any_id(global_id)
    if type_name in _NODE_SCOPES:
        require_scope(ctx, _NODE_SCOPES[type_name])
    if type_name == "Task":
        return Task.from_row(await resolvers.tasks.visible_task(ctx, pk))
    if type_name == "Document":
        return Document.from_row(await resolvers.documents.visible_document(ctx, pk))
    if type_name == "User":
        return user_type(ctx, await resolvers.users.visible_user(ctx, pk))
    if type_name in ("WebhookEndpoint", "WebhookDelivery"):
        from schema.webhooks import webhook_node

        return await webhook_node(ctx, type_name, pk)
    raise NotFound("Nothing has this ID.")


@strawberry.type
class Query:
    @strawberry.field(description="You, or null when the request carries no token.")
    async def viewer(self, info: Info[Context, Any]) -> User | None:
        row = await resolvers.users.viewer_user(info.context)
        return user_type(info.context, row) if row else None

    @strawberry.field
    async def node(self, info: Info[Context, Any], id: strawberry.ID) -> Node | None:
        return await _node(info.context, id)

    @strawberry.field(
        description=f"Up to {MAX_NODES} objects by ID; each missing one is null with an error.",
        directives=[ListSize(slicing_arguments=["ids"], assumed_size=MAX_NODES)],
    )
    def nodes(self, info: Info[Context, Any], ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > MAX_NODES:
            raise BadUserInput(f"At most {MAX_NODES} IDs at once; {len(ids)} given.", field="ids")
        # A list of awaitables: graphql-core resolves each item on its own, so one missing ID
        # nulls only its own entry.
        items: list[Awaitable[Node]] = [_node(info.context, global_id) for global_id in ids]
        return items  # type: ignore[return-value]

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def user(self, info: Info[Context, Any], id: strawberry.ID) -> User | None:
        return user_type(info.context, await resolvers.users.visible_user(info.context, decode_id(id, "User")))

    @strawberry.field(extensions=[PermissionExtension([HasScope(scopes.TASKS_READ)])])
    async def task(self, info: Info[Context, Any], id: strawberry.ID) -> Task | None:
        return Task.from_row(await resolvers.tasks.visible_task(info.context, decode_id(id, "Task")))

    @strawberry.field(
        description="Every task you may see: yours, assigned to you, or in documents shared with you.",
        extensions=[PermissionExtension([HasScope(scopes.TASKS_READ)])],
        directives=[CONNECTION],
    )
    async def tasks(
        self, info: Info[Context, Any],
        first: int | None = None, after: str | None = None, last: int | None = None, before: str | None = None,
        filter: TaskFilter | None = None, order_by: TaskOrder | None = None,
    ) -> Connection[Task]:
        f, order = task_query(filter, order_by)
        relations = task_relations(info)
        page = await resolvers.tasks.visible_tasks(
            info.context, f, order, page_args(first, after, last, before), relations
        )
        return connection(page, Task.listed(info.context, relations))

    @strawberry.field(extensions=[PermissionExtension([HasScope(scopes.DOCUMENTS_READ)])])
    async def document(self, info: Info[Context, Any], id: strawberry.ID) -> Document | None:
        row = await resolvers.documents.visible_document(info.context, decode_id(id, "Document"))
        return Document.from_row(row)

    @strawberry.field(
        description="Documents shared with you (including your own).",
        extensions=[PermissionExtension([HasScope(scopes.DOCUMENTS_READ)])],
        directives=[CONNECTION],
    )
    async def documents(
        self, info: Info[Context, Any],
        first: int | None = None, after: str | None = None, last: int | None = None, before: str | None = None,
    ) -> Connection[Document]:
        page = await resolvers.documents.visible_documents(info.context, page_args(first, after, last, before))
        return connection(page, Document.from_row)

    rate_limit: RateLimit | None = rate_limit
