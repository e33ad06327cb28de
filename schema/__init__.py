"""The one Strawberry schema: types, inputs, payloads, and error shaping.

`build_schema()` assembles it; `app/` decides which extensions (limits, auth, caches) run around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import strawberry
from graphql import GraphQLError
from graphql.execution.middleware import MiddlewareManager
from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from schema.documents import DocumentMutations
from schema.errors import shape_errors
from schema.execution import BatchedExecutor
from schema.extension_runner import LeanExtensionsRunner
from schema.query import Query as CoreQuery
from schema.realtime import CollaborationMutations, CollaborationQueries, Subscription
from schema.scalars import SCALARS
from schema.tasks import TaskMutations
from schema.users import AccountMutations, UserMutations
from schema.webhooks import WebhookMutations, WebhookQueries


@strawberry.type
class Query(CoreQuery, WebhookQueries, CollaborationQueries):
    pass


@strawberry.type
class Mutation(TaskMutations, DocumentMutations, CollaborationMutations, UserMutations, AccountMutations,
               WebhookMutations):
    pass


_NO_MIDDLEWARE = MiddlewareManager()


class TandemSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        # Replaces Strawberry's default (log every error, domain errors included): shape_errors logs
        # only the unexpected ones, with the request id, and masks them.
        context = execution_context.context if execution_context else None
        shape_errors(errors, getattr(context, "request_id", "-"))

    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        return LeanExtensionsRunner(execution_context=execution_context, extensions=extensions)

    def _get_middleware_manager(self, extensions: list[SchemaExtension]) -> MiddlewareManager:
        # Strawberry builds a manager per request; with no field-level extension it is always empty.
        resolving = [extension for extension in extensions if extension._implements_resolve()]
        return MiddlewareManager(*resolving) if resolving else _NO_MIDDLEWARE


def build_schema(
    extensions: Sequence[Any] = (), *, production: bool = False, batched_execution: bool = True,
    document_memo: str | None = None,
) -> TandemSchema:
    """The schema; `production` hides "Did you mean …?" suggestions that map out the schema.

    `batched_execution` runs queries with `BatchedExecutor` (schema/execution.py), which falls back to
    graphql-core's own executor for anything it does not handle identically; False: graphql-core only.
    `document_memo`: the `context.extras` key of a per-document memo, where it keeps its plans.
    """
    config = StrawberryConfig(disable_field_suggestions=production, scalar_map=SCALARS)
    executor = type("BatchedExecutor", (BatchedExecutor,), {"document_memo": document_memo})
    return TandemSchema(
        query=Query, mutation=Mutation, subscription=Subscription, extensions=list(extensions), config=config,
        execution_context_class=executor if batched_execution else None,
    )
