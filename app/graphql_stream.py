"""Subscriptions over plain HTTP, for clients that cannot open a WebSocket: `POST /graphql/stream`.

Strawberry's own transports do the framing: GraphQL over Server-Sent Events (`Accept:
text/event-stream`, `next`/`complete` events) and the incremental-delivery multipart protocol
(`Accept: multipart/mixed;subscriptionSpec=1.0`). Only subscriptions are served here; queries and
mutations stay on `/graphql`. The bearer token travels in the `Authorization` header. What runs goes
through the persisted-query resolver first, as at `/graphql`: a trusted-documents-only client may
subscribe with trusted documents only (400, `PERSISTED_QUERY_REQUIRED`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, MULTIPART_SUBSCRIPTION_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.execution import SubscriptionExecutionResult

from app.context import ContextFactory
from app.persisted import PersistedQueries
from app.request_id import current_request_id
from persisted_queries.resolve import PersistedQueryError
from resolvers.context import Context
from resolvers.errors import Unauthenticated
from rest.errors import error_response
from schema import TandemSchema


class GraphQLStream(GraphQL[Context, None]):
    def __init__(self, schema: TandemSchema, context_factory: ContextFactory, persisted: PersistedQueries) -> None:
        super().__init__(
            schema, graphql_ide=None, allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_SSE_PROTOCOL, MULTIPART_SUBSCRIPTION_PROTOCOL),
        )
        self.context_factory = context_factory
        self.persisted = persisted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        if self._get_stream_transport_from_headers(headers) is None:
            refused = error_response(
                406, "NOT_ACCEPTABLE",
                "Accept text/event-stream (SSE) or multipart/mixed;subscriptionSpec=1.0 here; "
                "queries and mutations go to /graphql.", current_request_id.get(),
            )
            await refused(scope, receive, send)
            return
        request = Request(scope, receive=receive)
        try:
            context = await self.context_factory(request.headers.get("authorization"), current_request_id.get())
        except Unauthenticated as exc:
            unauthorized = error_response(401, "UNAUTHENTICATED", exc.message, current_request_id.get(),
                                          headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
            await unauthorized(scope, receive, send)
            return
        try:
            params = await _params(request)
            if params is not None:
                context.extras[_OPERATION_TEXT] = await self._operation_text(params, context)
            response: Response = await self.run(request, context=context)
        except HTTPException as exc:  # Strawberry's answer to a malformed request
            response = PlainTextResponse(exc.reason, status_code=exc.status_code)
        except PersistedQueryError as exc:
            response = JSONResponse({"errors": [{"message": exc.message, "extensions": {
                "code": exc.code, "requestId": context.request_id}}]}, status_code=exc.status)
        await response(scope, receive, send)

    async def _operation_text(self, params: dict[str, Any], context: Context) -> str:
        operation = await self.persisted.resolve(params, context.viewer)
        await self.persisted.started(operation)
        return operation.query

    async def execute_operation(
        self, request: Request, request_adapter: Any, request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: Context, root_value: None, sub_response: Any,
    ) -> ExecutionResult | list[ExecutionResult] | SubscriptionExecutionResult:
        if not isinstance(request_data, GraphQLRequestData) or _OPERATION_TEXT not in context.extras:
            raise HTTPException(400, "Send one GraphQL request as a JSON object.")
        request_data = dataclasses.replace(request_data, query=str(context.extras[_OPERATION_TEXT]))
        return await super().execute_operation(request, request_adapter, request_data, context, root_value,
                                               sub_response)


_OPERATION_TEXT = "stream_operation_text"  # Context.extras: the text the persisted-query resolver chose


async def _params(request: Request) -> dict[str, Any] | None:
    """The JSON body's parameters, type-checked as the resolver needs them; None leaves the body for
    Strawberry to refuse (not JSON, a batch, wrong types)."""
    try:
        params = json.loads(await request.body())
    except ValueError:
        return None
    if (not isinstance(params, dict) or not isinstance(params.get("query"), str | None)
            or not isinstance(params.get("extensions"), dict | None)):
        return None
    return params
