"""Subscriptions over plain HTTP, for clients that cannot open a WebSocket: `POST /graphql/stream`.

Strawberry's own transports do the framing: GraphQL over Server-Sent Events (`Accept:
text/event-stream`, `next`/`complete` events) and the incremental-delivery multipart protocol
(`Accept: multipart/mixed;subscriptionSpec=1.0`). Only subscriptions are served here; queries and
mutations stay on `/graphql`. The bearer token travels in the `Authorization` header.
"""

from __future__ import annotations

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, MULTIPART_SUBSCRIPTION_PROTOCOL

from app.context import ContextFactory
from app.request_id import current_request_id
from resolvers.context import Context
from resolvers.errors import Unauthenticated
from rest.errors import error_response
from schema import TandemSchema


class GraphQLStream(GraphQL[Context, None]):
    def __init__(self, schema: TandemSchema, context_factory: ContextFactory) -> None:
        super().__init__(
            schema, graphql_ide=None, allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_SSE_PROTOCOL, MULTIPART_SUBSCRIPTION_PROTOCOL),
        )
        self.context_factory = context_factory

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
            response: Response = await self.run(request, context=context)
        except HTTPException as exc:  # Strawberry's answer to a malformed request
            response = PlainTextResponse(exc.reason, status_code=exc.status_code)
        await response(scope, receive, send)
