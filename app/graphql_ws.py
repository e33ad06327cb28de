"""GraphQL over WebSocket at `/graphql`: graphql-transport-ws (primary) and legacy graphql-ws.

Strawberry runs both protocols (connection_init timeout 4408, duplicate init 4429, subscribe before
ack 4401, duplicate operation id 4409, malformed messages 4400, unknown subprotocol 4406). What
Tandem adds lives here, in one place, so that limits (message rate, subscriptions per connection,
connections per user) can hook into the same lifecycle:

- `Socket`: one open connection — its caller, the guard that watches its token, how to close it.
- Authentication in `connection_init`: `{"Authorization": "Bearer <jwt>"}` (key matched
  case-insensitively), or a ticket from `POST /auth/ws-ticket` in the handshake URL, checked by the
  same `Authenticator` as `/graphql` (our tokens, service clients, trusted external issuers, the
  revocation list). Failure: 4403.
- The socket closes with 4403 when its access token expires, unless the client sends a fresh token
  for the same caller first, in a graphql-transport-ws `ping` payload (`{"Authorization": …}`), and
  when its token or sign-in session is revoked: the guard looks the token up in the revocation list
  every `TANDEM_WS_REVOCATION_CHECK_SECONDS` (one Redis EXISTS when Redis is configured).
- Limits (`limits/websocket.py`): the address's connection count and cool-down before the handshake
  is accepted (refused: accepted, then closed 4429 with the reason), the user's after
  connection_init (4429), each message and operation in `app/ws_handlers.py`, the slots renewed by
  the guard and freed when the socket closes, however it closes.
- `Sockets.close_all(1012)` at shutdown tells every client to reconnect elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any, cast

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.extensions import SchemaExtension
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from app.context import ContextFactory
from app.persisted import PersistedQueries
from app.request_id import new_request_id
from app.ws_handlers import LegacyWSHandler, TransportWSHandler, WebSocketAdapter, authorization_of, graphql_error
from auth.authenticate import Identity
from auth.revocation import RevocationList, RevocationUnavailable
from auth.viewer import bearer_token
from auth.ws_tickets import TicketStore
from limits.websocket import ConnectionLimits, Refusal, WebSocketLimiter
from persisted_queries.resolve import PersistedQueryError
from resolvers.collaboration import refresh
from resolvers.context import Context
from resolvers.errors import Unauthenticated
from schema import TandemSchema

log = logging.getLogger("tandem.ws")

FORBIDDEN = 4403  # graphql-ws: the server refuses (or no longer accepts) the credentials
SERVICE_RESTART = 1012  # RFC 6455: the server is restarting; clients reconnect
_SCOPE_KEY = "tandem.socket"


class Socket:
    """One open WebSocket connection and its credentials."""

    def __init__(self, websocket: WebSocket, limits: ConnectionLimits, revocations: RevocationList,
                 revocation_check_seconds: float) -> None:
        self.websocket = websocket
        self.limits = limits
        self.request_id = new_request_id(websocket.headers.get("x-request-id"))
        self.ticket = websocket.query_params.get("ticket")
        self.context: Context | None = None
        self.identity: Identity | None = None
        self.revocations = revocations
        self.revocation_check_seconds = revocation_check_seconds
        self._guard: asyncio.Task[None] | None = None

    @property
    def open(self) -> bool:
        return self.websocket.application_state == WebSocketState.CONNECTED

    async def close(self, code: int, reason: str) -> None:
        # Slots back and any cool-down set before the close frame leaves: a client that reconnects
        # the moment it reads 4429 must meet the cool-down, whatever the socket's operations still do.
        await self.limits.close()
        if self.open:
            with contextlib.suppress(RuntimeError, OSError):  # the client may be gone already
                await self.websocket.close(code=code, reason=reason)
        self.stop()

    def authenticated(self, identity: Identity) -> None:
        """(Re)start the guard for the token that now stands behind this socket."""
        self.identity = identity
        if self._guard is not None:
            self._guard.cancel()
        self._guard = asyncio.create_task(self._watch(identity), name="tandem-ws-guard")

    async def _watch(self, identity: Identity) -> None:
        """Close the socket (4403) when the token expires or is revoked, whichever comes first; keep
        the connection's limit slots (leases) renewed meanwhile."""
        renew_every = self.limits.policy.lease_seconds / 2
        renew_at = time.monotonic() + renew_every
        while True:
            left = identity.expires_at - time.time() if identity.expires_at is not None else math.inf
            if left <= 0:
                log.info("closing a WebSocket: its access token expired", extra={"request_id": self.request_id})
                await self.close(FORBIDDEN, "Forbidden: the access token expired")
                return
            await asyncio.sleep(max(0.0, min(left, self.revocation_check_seconds, renew_at - time.monotonic())))
            if time.monotonic() >= renew_at:
                await self.limits.renew()
                renew_at = time.monotonic() + renew_every
            if time.time() < (identity.expires_at or math.inf) and await self._revoked(identity):
                log.info("closing a WebSocket: its access token was revoked", extra={"request_id": self.request_id})
                await self.close(FORBIDDEN, "Forbidden: the access token was revoked")
                return

    async def _revoked(self, identity: Identity) -> bool:
        if identity.token_id is None:  # an external token without `jti` cannot be revoked here
            return False
        try:
            return await self.revocations.is_revoked(identity.token_id, identity.session_id)
        except RevocationUnavailable as exc:
            # Checked when the socket opened; keep it, and look again at the next interval.
            log.warning("WebSocket revocation check skipped: %s", exc, extra={"request_id": self.request_id})
            return False

    def stop(self) -> None:
        if self._guard is not None and self._guard is not asyncio.current_task():
            self._guard.cancel()


def _same_caller(current: Identity, fresh: Identity) -> bool:
    """A refreshed token must stand for the same user (or, for a service token, the same client)."""
    if current.user_id is not None:
        return fresh.user_id == current.user_id
    return fresh.user_id is None and fresh.client_id == current.client_id


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


class GraphQLWebSocket(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler
    websocket_adapter_class = WebSocketAdapter

    def __init__(
        self,
        schema: TandemSchema,
        context_factory: ContextFactory,
        tickets: TicketStore,
        sockets: Sockets,
        limiter: WebSocketLimiter,
        persisted: PersistedQueries,
        *,
        connection_init_timeout: float,
        allowed_origins: list[str],
        revocation_check_seconds: float = 15.0,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide=None,
            connection_init_wait_timeout=timedelta(seconds=connection_init_timeout),
            # Browsers send Origin; only ours (or same-origin pages) may open a socket with their cookies' help.
            allowed_origins=allowed_origins,
        )
        self.context_factory = context_factory
        self.tickets = tickets
        self.sockets = sockets
        self.limiter = limiter
        self.persisted = persisted
        self.revocation_check_seconds = revocation_check_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            raise RuntimeError("GraphQLWebSocket serves WebSocket connections only")
        websocket = WebSocket(scope, receive=receive, send=send)
        limits = await self.limiter.open(uuid.uuid4().hex, websocket.client.host if websocket.client else None)
        if isinstance(limits, Refusal):
            await _refuse(websocket, limits)
            return
        socket = Socket(websocket, limits, self.context_factory.authenticator.revocations,
                        self.revocation_check_seconds)
        scope[_SCOPE_KEY] = socket
        self.sockets.open.add(socket)
        try:
            await self.run(websocket)
        finally:
            socket.stop()
            self.sockets.open.discard(socket)
            await limits.close()

    async def get_context(self, request: Any, response: Any) -> Context:
        socket: Socket = request.scope[_SCOPE_KEY]
        context = self.context_factory.anonymous(socket.request_id)
        context.extras["disconnect"] = socket.close
        context.extras["socket"] = socket
        # The bucket an anonymous caller's operations are charged to (limits.cost_limit).
        context.client_address = socket.websocket.client.host if socket.websocket.client else None
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
        if not await self._authenticate(context, authorization, current=None):
            raise ConnectionRejectionError({"message": "The access token is not valid."})
        refusal = await socket.limits.identify(context.viewer)
        if refusal is not None:
            log.info("WebSocket refused: %s", refusal.reason, extra={"request_id": socket.request_id})
            await socket.close(refusal.close_code, _reason(refusal))
            raise ConnectionRejectionError({"message": refusal.reason})  # Strawberry finds the socket closed
        plain_ack: UnsetType = UNSET  # a connection_ack without payload
        return plain_ack

    async def operation_text(self, context: Context, payload: Mapping[str, Any]) -> str | dict[str, Any]:
        """What a subscribe/start payload runs (`query`, `documentId` or an APQ hash, under the same
        trusted-documents rule as `/graphql`), or the GraphQL error to answer it with."""
        try:
            operation = await self.persisted.resolve(payload, context.viewer)
        except PersistedQueryError as exc:
            return graphql_error(exc.message, exc.code, cast(Socket, context.extras["socket"]).request_id)
        await self.persisted.started(operation)
        return operation.query

    async def reauthenticate(self, context: Context, authorization: str) -> bool:
        """A fresh token for the same caller keeps the socket open; anything else closes it (4403)."""
        socket = cast(Socket, context.extras["socket"])
        if await self._authenticate(context, authorization, current=socket.identity):
            return True
        await socket.close(FORBIDDEN, "Forbidden: the new access token is not valid for this connection")
        return False

    async def _authenticate(self, context: Context, authorization: str, *, current: Identity | None) -> bool:
        """Identify the token as `/graphql` does; on success the socket runs as that caller from now on."""
        socket = cast(Socket, context.extras["socket"])
        try:
            token = bearer_token(authorization)
            if token is None:
                return False
            identity = await self.context_factory.authenticator.identify(token)
            if current is not None and not _same_caller(current, identity):
                log.info("WebSocket refresh refused: the token is for someone else",
                         extra={"request_id": socket.request_id})
                return False
            fresh = await self.context_factory.for_identity(identity, socket.request_id)
        except (Unauthenticated, RevocationUnavailable) as exc:
            log.info("WebSocket authentication refused: %s", exc, extra={"request_id": socket.request_id})
            return False
        context.viewer = fresh.viewer
        context.loaders = fresh.loaders
        socket.authenticated(identity)
        return True


def _reason(refusal: Refusal) -> str:
    return f"{refusal.reason} Retry after {refusal.retry_after} s."


async def _refuse(websocket: WebSocket, refusal: Refusal) -> None:
    """Accept (in a protocol the client speaks, so its graphql-ws client reads the code) and close 4429."""
    offered = websocket.scope.get("subprotocols") or []
    protocol = next((p for p in (GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL) if p in offered), None)
    log.info("WebSocket refused before the handshake: %s", refusal.reason)
    with contextlib.suppress(RuntimeError, OSError):  # the client may be gone already
        await websocket.accept(subprotocol=protocol)
        await websocket.close(code=refusal.close_code, reason=_reason(refusal))
