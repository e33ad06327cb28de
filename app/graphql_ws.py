"""GraphQL over WebSocket at `/graphql`: graphql-transport-ws (primary) and legacy graphql-ws.

Strawberry runs both protocols (connection_init timeout 4408, duplicate init 4429, subscribe before
ack 4401, duplicate operation id 4409, malformed messages 4400, unknown subprotocol 4406). What
Tandem adds lives here, in one place, so that limits (message rate, subscriptions per connection,
connections per user) can hook into the same lifecycle:

- `Socket`: one open connection — its viewer, when its token expires, how to close it.
- Authentication in `connection_init`: `{"Authorization": "Bearer <jwt>"}` (key matched
  case-insensitively), or a ticket from `POST /auth/ws-ticket` in the handshake URL. Failure: 4403.
- The socket closes with 4403 when its access token expires, unless the client sends a fresh token
  for the same user first, in a graphql-transport-ws `ping` payload (`{"Authorization": …}`).
- `revoked`: a hook for revocation checks (OAuth work), run at connect and on every refresh.
- `Sockets.close_all(1012)` at shutdown tells every client to reconnect elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any, cast

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.extensions import SchemaExtension
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_transport_ws.types import PingMessage
from strawberry.types.unset import UNSET, UnsetType

from app.context import ContextFactory
from app.request_id import new_request_id
from auth.tokens import AccessClaims, InvalidToken, TokenService
from auth.viewer import bearer_token
from auth.ws_tickets import TicketStore
from resolvers.collaboration import refresh
from resolvers.context import Context
from resolvers.errors import Unauthenticated
from schema import TandemSchema

log = logging.getLogger("tandem.ws")

FORBIDDEN = 4403  # graphql-ws: the server refuses (or no longer accepts) the credentials
SERVICE_RESTART = 1012  # RFC 6455: the server is restarting; clients reconnect
_SCOPE_KEY = "tandem.socket"

Revoked = Callable[[AccessClaims], Awaitable[bool]]


def authorization_of(payload: object) -> str | None:
    """The `Authorization` value of a connection_init/ping payload, key matched case-insensitively."""
    if not isinstance(payload, dict):
        return None
    for key, value in payload.items():
        if isinstance(key, str) and key.lower() == "authorization" and isinstance(value, str):
            return value
    return None


class Socket:
    """One open WebSocket connection and its credentials."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.request_id = new_request_id(websocket.headers.get("x-request-id"))
        self.ticket = websocket.query_params.get("ticket")
        self.context: Context | None = None
        self.claims: AccessClaims | None = None
        self._expiry: asyncio.Task[None] | None = None

    async def close(self, code: int, reason: str) -> None:
        if self.websocket.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, OSError):  # the client may be gone already
                await self.websocket.close(code=code, reason=reason)
        self.stop()

    def authenticated(self, claims: AccessClaims) -> None:
        """(Re)arm the expiry timer for the token that now stands behind this socket."""
        self.claims = claims
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry = asyncio.create_task(self._expire_at(claims.expires_at), name="tandem-ws-expiry")

    async def _expire_at(self, expires_at: float) -> None:
        await asyncio.sleep(max(0.0, expires_at - time.time()))
        log.info("closing a WebSocket: its access token expired", extra={"request_id": self.request_id})
        await self.close(FORBIDDEN, "Forbidden: the access token expired")

    def stop(self) -> None:
        if self._expiry is not None and self._expiry is not asyncio.current_task():
            self._expiry.cancel()


class FreshPerOperation(SchemaExtension):
    """A socket's context lives as long as the socket: each operation on it starts with fresh loaders
    (and a fresh content read), as an HTTP request would, instead of rows cached by earlier ones."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        if isinstance(context, Context) and "socket" in context.extras:
            refresh(context)
        yield


class Sockets:
    """Every open socket of this process (for shutdown, and for limits to count)."""

    def __init__(self) -> None:
        self.open: set[Socket] = set()

    async def close_all(self, code: int, reason: str) -> None:
        await asyncio.gather(*(socket.close(code, reason) for socket in list(self.open)))


class _TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    async def handle_ping(self, message: PingMessage) -> None:
        authorization = authorization_of(message.get("payload"))
        if authorization is not None and self.connection_acknowledged:
            view = cast("GraphQLWebSocket", self.view)
            if not await view.reauthenticate(self.context, authorization):
                return  # the socket is closed
        await self.send_message({"type": "pong"})


class GraphQLWebSocket(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = _TransportWSHandler

    def __init__(
        self,
        schema: TandemSchema,
        context_factory: ContextFactory,
        tokens: TokenService,
        tickets: TicketStore,
        sockets: Sockets,
        *,
        connection_init_timeout: float,
        allowed_origins: list[str],
        revoked: Revoked | None = None,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide=None,
            connection_init_wait_timeout=timedelta(seconds=connection_init_timeout),
            # Browsers send Origin; only ours (or same-origin pages) may open a socket with their cookies' help.
            allowed_origins=allowed_origins,
        )
        self.context_factory = context_factory
        self.tokens = tokens
        self.tickets = tickets
        self.sockets = sockets
        self.revoked = revoked

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            raise RuntimeError("GraphQLWebSocket serves WebSocket connections only")
        websocket = WebSocket(scope, receive=receive, send=send)
        socket = Socket(websocket)
        scope[_SCOPE_KEY] = socket
        self.sockets.open.add(socket)
        try:
            await self.run(websocket)
        finally:
            socket.stop()
            self.sockets.open.discard(socket)

    async def get_context(self, request: Any, response: Any) -> Context:
        socket: Socket = request.scope[_SCOPE_KEY]
        context = self.context_factory.anonymous(socket.request_id)
        context.extras["disconnect"] = socket.close
        context.extras["socket"] = socket
        # Strawberry stores the connection_init payload on the context when the attribute exists.
        context.connection_params = None  # type: ignore[attr-defined]
        socket.context = context
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        socket = cast(Socket, context.extras["socket"])
        authorization = authorization_of(getattr(context, "connection_params", None))
        if socket.ticket is not None:
            token = await self.tickets.redeem(socket.ticket)
            if token is None:
                raise ConnectionRejectionError({"message": "The ticket is unknown, used or expired."})
            authorization = f"Bearer {token}"
        if authorization is None:
            raise ConnectionRejectionError(
                {"message": "Send {\"Authorization\": \"Bearer <token>\"} in connection_init, or a ticket."}
            )
        if not await self._authenticate(context, authorization, expected_user=None):
            raise ConnectionRejectionError({"message": "The access token is not valid."})
        plain_ack: UnsetType = UNSET  # a connection_ack without payload
        return plain_ack

    async def reauthenticate(self, context: Context, authorization: str) -> bool:
        """A fresh token for the same user keeps the socket open; anything else closes it (4403)."""
        socket = cast(Socket, context.extras["socket"])
        user = context.viewer.user_id if context.viewer else None
        if await self._authenticate(context, authorization, expected_user=user):
            return True
        await socket.close(FORBIDDEN, "Forbidden: the new access token is not valid for this connection")
        return False

    async def _authenticate(self, context: Context, authorization: str, *, expected_user: int | None) -> bool:
        socket = cast(Socket, context.extras["socket"])
        try:
            token = bearer_token(authorization)
            if token is None:
                return False
            claims = self.tokens.verify(token)
            fresh = await self.context_factory(f"Bearer {token}", socket.request_id)
        except (InvalidToken, Unauthenticated) as exc:
            log.info("WebSocket authentication refused: %s", exc, extra={"request_id": socket.request_id})
            return False
        if self.revoked is not None and await self.revoked(claims):
            return False
        if expected_user is not None and (fresh.viewer is None or fresh.viewer.user_id != expected_user):
            return False
        context.viewer = fresh.viewer
        context.loaders = fresh.loaders
        socket.authenticated(claims)
        return True
