"""Strawberry's two graphql-ws protocol handlers, with what Tandem checks on each message.

Every message received first spends one from the connection's message rate (`limits/websocket.py`):
over the rate it is dropped (a `subscribe`/`start` is answered with an `error`, `RATE_LIMITED`), and
after too many strikes the socket closes with 4429. Each operation holds one of the connection's
operation slots while it runs; a query, mutation or subscription that is refused `RATE_LIMITED` by
the cost limit counts as a strike too. What an operation runs goes through the persisted-query
resolver first, as at `/graphql`: a trusted-documents-only client runs trusted documents only
(`PERSISTED_QUERY_REQUIRED`), and any client may send a `documentId` or APQ hash instead of the text.
A `ping` may carry a fresh token (graphql-transport-ws).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from starlette.websockets import WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import Message, PingMessage, SubscribeMessage
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import OperationMessage, StartMessage

from limits.websocket import CLOSE_TOO_MANY_REQUESTS, Verdict
from resolvers.context import Context

if TYPE_CHECKING:
    from app.graphql_ws import GraphQLWebSocket, Socket

RATE_LIMITED = "RATE_LIMITED"
TOO_MANY_MESSAGES = "Too many messages on this connection; slow down."


def authorization_of(payload: object) -> str | None:
    """The `Authorization` value of a connection_init/ping payload, key matched case-insensitively."""
    if not isinstance(payload, dict):
        return None
    for key, value in payload.items():
        if isinstance(key, str) and key.lower() == "authorization" and isinstance(value, str):
            return value
    return None


def socket_of(context: Context) -> Socket:
    return cast("Socket", context.extras["socket"])


def graphql_error(message: str, code: str, request_id: str) -> dict[str, Any]:
    return {"message": message, "extensions": {"code": code, "requestId": request_id}}


def _starts(message: object, kind: str) -> str | None:
    """The operation id of a message that starts an operation (`subscribe` / legacy `start`)."""
    if isinstance(message, dict) and message.get("type") == kind and isinstance(message.get("id"), str):
        return cast(str, message["id"])
    return None


def _well_formed(payload: object) -> bool:
    """A payload that names a document to run: `query`, `documentId` or an APQ hash."""
    if not (isinstance(payload, dict) and isinstance(payload.get("query"), str | None)
            and isinstance(payload.get("extensions"), dict | None)):
        return False
    extensions = payload.get("extensions") or {}
    return (isinstance(payload.get("query"), str) or isinstance(payload.get("documentId"), str)
            or isinstance(extensions.get("persistedQuery"), dict))


async def _admit_message(socket: Socket) -> bool:
    """Spend one message of the connection's rate; False: drop it (the socket may be closed now)."""
    verdict = socket.limits.message()
    if verdict is Verdict.CLOSE:
        await socket.close(CLOSE_TOO_MANY_REQUESTS, "Too many requests: message rate exceeded")
    return verdict is Verdict.ACCEPT


async def _admit_operation(socket: Socket, operation_id: str) -> dict[str, Any] | None:
    """Take an operation slot; the error to answer with when there is none (None also when closed)."""
    if socket.limits.subscribe(operation_id):
        return None
    if socket.limits.struck_out:
        await socket.close(CLOSE_TOO_MANY_REQUESTS, "Too many requests: operation limit exceeded")
        return None
    limit = socket.limits.policy.max_subscriptions
    return graphql_error(f"Too many operations on this connection (at most {limit} at once).",
                         RATE_LIMITED, socket.request_id)


async def _count_refusals(socket: Socket, errors: object) -> None:
    """A `RATE_LIMITED` answer from the cost limit is a strike against the connection."""
    if isinstance(errors, list) and any(
        isinstance(error, Mapping) and isinstance(error.get("extensions"), Mapping)
        and error["extensions"].get("code") == RATE_LIMITED for error in errors
    ) and socket.limits.strike() is Verdict.CLOSE:
        await socket.close(CLOSE_TOO_MANY_REQUESTS, "Too many requests: rate limit exceeded")


class WebSocketAdapter(ASGIWebSocketAdapter):
    """Tandem closes sockets itself (expiry, revocation, limits): Strawberry sending or closing after
    that meets a disconnected socket rather than an error."""

    async def send_json(self, message: Mapping[str, object]) -> None:
        if self.ws.application_state != WebSocketState.CONNECTED:
            raise WebSocketDisconnected
        await super().send_json(message)

    async def close(self, code: int, reason: str) -> None:
        if self.ws.application_state == WebSocketState.CONNECTED:
            await super().close(code, reason)


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws."""

    @property
    def socket(self) -> Socket:
        return socket_of(self.context)

    async def handle_message(self, message: Message) -> None:
        if await _admit_message(self.socket):
            await super().handle_message(message)
        elif (operation_id := _starts(message, "subscribe")) is not None:
            await self._refuse(operation_id, graphql_error(TOO_MANY_MESSAGES, RATE_LIMITED, self.socket.request_id))

    async def handle_ping(self, message: PingMessage) -> None:
        authorization = authorization_of(message.get("payload"))
        if authorization is not None and self.connection_acknowledged:
            view = cast("GraphQLWebSocket", self.view)
            if not await view.reauthenticate(self.context, authorization):
                return  # the socket is closed
        await self.send_message({"type": "pong"})

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if not self.connection_acknowledged or message["id"] in self.operations:
            await super().handle_subscribe(message)  # 4401, 4409
            return
        if not _well_formed(message["payload"]):
            await self.handle_invalid_message("Invalid subscribe payload")  # 4400
            return
        query = await cast("GraphQLWebSocket", self.view).operation_text(self.context, message["payload"])
        if not isinstance(query, str):
            await self._refuse(message["id"], query)
            return
        refusal = await _admit_operation(self.socket, message["id"])
        if refusal is not None:
            await self._refuse(message["id"], refusal)
        elif self.socket.open:
            await super().handle_subscribe({**message, "payload": {**message["payload"], "query": query}})

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        try:
            await super().run_operation(operation)
        finally:
            # Unless the client has already reused the id for a new operation (counted afresh).
            if self.operations.get(operation.id) is not operation:
                self.socket.limits.unsubscribe(operation.id)

    async def cleanup_operation(self, operation_id: str) -> None:
        if operation_id in self.operations:
            self.socket.limits.unsubscribe(operation_id)
        await super().cleanup_operation(operation_id)

    async def send_message(self, message: Message) -> None:
        await super().send_message(message)
        if message["type"] == "next":
            await _count_refusals(self.socket, message["payload"].get("errors"))
        elif message["type"] == "error":
            await _count_refusals(self.socket, message["payload"])

    async def _refuse(self, operation_id: str, error: dict[str, Any]) -> None:
        # Straight to the socket: a refusal of ours is already counted, unlike the cost limit's.
        if self.socket.open:
            await self.websocket.send_json({"id": operation_id, "type": "error", "payload": [error]})


class LegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    """The legacy graphql-ws protocol (subscriptions-transport-ws)."""

    @property
    def socket(self) -> Socket:
        return socket_of(self.context)

    async def handle_message(self, message: OperationMessage) -> None:
        if await _admit_message(self.socket):
            await super().handle_message(message)
        elif (operation_id := _starts(message, "start")) is not None:
            await self._refuse(operation_id, graphql_error(TOO_MANY_MESSAGES, RATE_LIMITED, self.socket.request_id))

    async def handle_start(self, message: StartMessage) -> None:
        if not self.connection_acknowledged:
            await super().handle_start(message)  # 4401
            return
        operation_id = message["id"]
        if operation_id in self.tasks:  # the protocol replaces an operation started under the same id
            await self.cleanup_operation(operation_id)
        payload = message["payload"]
        if not _well_formed(payload):
            await self._refuse(operation_id, graphql_error("Invalid start payload.", "BAD_USER_INPUT",
                                                           self.socket.request_id))
            return
        query = await cast("GraphQLWebSocket", self.view).operation_text(self.context, payload)
        if not isinstance(query, str):
            await self._refuse(operation_id, query)
            return
        refusal = await _admit_operation(self.socket, operation_id)
        if refusal is not None:
            await self._refuse(operation_id, refusal)
        elif self.socket.open:
            await super().handle_start({**message, "payload": {**payload, "query": query}})

    async def handle_async_results(
        self, operation_id: str, query: str, operation_name: str | None, variables: dict[str, object] | None
    ) -> None:
        try:
            await super().handle_async_results(operation_id, query, operation_name, variables)
        finally:
            self.socket.limits.unsubscribe(operation_id)

    async def send_message(self, message: OperationMessage) -> None:
        await super().send_message(message)
        if message["type"] == "data":
            await _count_refusals(self.socket, message["payload"].get("errors"))
        elif message["type"] == "error":
            await _count_refusals(self.socket, [message["payload"]])

    async def _refuse(self, operation_id: str, error: dict[str, Any]) -> None:
        if self.socket.open:
            await self.websocket.send_json({"type": "error", "id": operation_id, "payload": error})
