"""`Idempotency-Key`: retry a mutation safely, over GraphQL or REST.

ASGI middleware on the endpoints that accept the header (`POST /graphql`, `POST /webhooks/*`).
For a request there that carries the header:

- the first request runs in one database transaction with its key, and its response is stored
  for 24 hours, scoped to who sent it: client + user from the access token, or the IP address when
  anonymous; its effects and its stored answer commit together (`rest/idempotency_store.py`), and
  the answer is sent only once both have;
- a retry with the same key and the same request gets that response again, byte for byte, with
  `Idempotent-Replayed: true`, and nothing runs twice, not even when the first one's process died;
- the same key with a different request (method, path, query or body) is 422
  `IDEMPOTENCY_KEY_REUSED`; a retry while the first is still running waits for it (up to
  `TANDEM_IDEMPOTENCY_WAIT_SECONDS`), then gets its answer, or 409 `IDEMPOTENCY_KEY_IN_USE` (with
  `Retry-After`); a malformed key is 400 `INVALID_IDEMPOTENCY_KEY`.

Answers a retry should not see again are not stored, and their effects are rolled back, so the
retry runs afresh and once: 5xx, 401 (a new token may fix it), 408, 409, 425, 429, and GraphQL
results that carry INTERNAL_SERVER_ERROR or RATE_LIMITED. A request with a bad token or an
oversized body passes through untouched; the endpoint answers it (401, 413) as it would without
the header.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth.tokens import InvalidToken, TokenService
from auth.viewer import bearer_token
from db import request_transaction
from resolvers.errors import Unauthenticated
from rest.header_fields import header_field
from rest.idempotency_store import Acquired, Claim, IdempotencyKeys, Mismatch, Replay, StoredResponse
from rest.request_ids import request_id_in

HEADER = b"idempotency-key"
REPLAYED = "Idempotent-Replayed"
_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_NOT_STORED = frozenset({401, 408, 409, 425, 429})
_RETRYABLE_GRAPHQL_CODES = frozenset({"INTERNAL_SERVER_ERROR", "RATE_LIMITED"})
# Per-response headers that a replay gets fresh from the middleware around us (or recomputes).
_FRESH_HEADERS = frozenset({"x-request-id", "date", "server", "content-length", "set-cookie"})
GRAPHQL_RESPONSE = "application/graphql-response+json"

Shape = Literal["rest", "graphql"]


@dataclass(frozen=True, slots=True)
class IdempotentPath:
    """`path` exactly, or every path under it when it ends with "/", for the methods its endpoints
    accept (any other method goes straight to the router, which answers 405); errors in `shape`."""

    path: str
    shape: Shape
    methods: frozenset[str] = frozenset({"POST"})

    def matches(self, method: str, path: str) -> bool:
        if method not in self.methods:
            return False
        return path.startswith(self.path) if self.path.endswith("/") else path == self.path


def identify_with(tokens: TokenService) -> Callable[[str | None, str], str | None]:
    """Who is asking, as a scope for keys; `None` (do not apply keys) for a token that fails."""

    def identify(authorization: str | None, client_ip: str) -> str | None:
        try:
            token = bearer_token(authorization)
        except Unauthenticated:
            return None
        if token is None:
            return f"ip:{client_ip}"
        try:
            claims = tokens.verify(token)
        except InvalidToken:
            return None
        return f"user:{claims.subject}|client:{claims.client_id or '-'}"

    return identify


def _error(shape: Shape, status: int, code: str, message: str, request_id: str, scope: Scope,
           headers: dict[str, str] | None = None) -> Response:
    if shape == "graphql":
        accept = Headers(scope=scope).get("accept", "")
        media = GRAPHQL_RESPONSE if GRAPHQL_RESPONSE in accept else "application/json"
        body: Any = {"errors": [{"message": message, "extensions": {"code": code, "requestId": request_id}}]}
    else:
        media = "application/json"
        body = {"error": {"code": code, "message": message, "details": None, "requestId": request_id}}
    return Response(orjson.dumps(body), status_code=status, media_type=media, headers=headers)


def _fingerprint(scope: Scope, body: bytes) -> str:
    digest = hashlib.sha256()
    content_type = Headers(scope=scope).get("content-type", "")
    for part in (scope["method"], scope["path"], scope.get("query_string", b"").decode("latin-1"), content_type):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
    digest.update(body)
    return digest.hexdigest()


def _storable(shape: Shape, response: StoredResponse) -> bool:
    if response.status >= 500 or response.status in _NOT_STORED:
        return False
    if shape == "graphql":
        try:
            errors = orjson.loads(response.body).get("errors") or []
            codes = {(error.get("extensions") or {}).get("code") for error in errors}
        except (orjson.JSONDecodeError, AttributeError):
            return True
        return not codes & _RETRYABLE_GRAPHQL_CODES
    return True


class Idempotency:
    def __init__(
        self,
        app: ASGIApp,
        *,
        keys: IdempotencyKeys,
        identify: Callable[[str | None, str], str | None],
        paths: Sequence[IdempotentPath],
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.keys = keys
        self.identify = identify
        self.paths = tuple(paths)
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _MUTATING:
            await self.app(scope, receive, send)
            return
        key = header_field(scope, HEADER)
        shape = None if key is None else next(
            (p.shape for p in self.paths if p.matches(scope["method"], scope["path"])), None)
        if shape is None or key is None:
            await self.app(scope, receive, send)
            return
        request_id = request_id_in(scope)
        if not _KEY.fullmatch(key):
            message = "`Idempotency-Key` must be 1 to 255 visible ASCII characters (a UUID, say)."
            await _error(shape, 400, "INVALID_IDEMPOTENCY_KEY", message, request_id, scope)(scope, receive, send)
            return
        client = scope.get("client")
        who = self.identify(header_field(scope, b"authorization"), client[0] if client else "unknown")
        if who is None:
            await self.app(scope, receive, send)
            return
        read = await self._read_body(receive)
        if read is None:
            return  # the client went away before sending its body
        body, complete = read
        replay_receive = self._replaying(body, complete, receive)
        if not complete:  # too large to fingerprint: the endpoint refuses it on its own
            await self.app(scope, replay_receive, send)
            return

        fingerprint = _fingerprint(scope, body)
        async with self.keys.claim(who, key, fingerprint) as claim:
            outcome = claim.outcome
            if isinstance(outcome, Acquired):
                stored = await self._run_first(scope, replay_receive, shape, claim)
        if isinstance(outcome, Acquired):
            await send(stored[0])
            await send({"type": "http.response.body", "body": stored[1].body, "more_body": False})
        elif isinstance(outcome, Replay):
            await self._send_stored(outcome.response, send)
        elif isinstance(outcome, Mismatch):
            message = "This `Idempotency-Key` was already used for a different request; use a new key."
            await _error(shape, 422, "IDEMPOTENCY_KEY_REUSED", message, request_id, scope)(scope, receive, send)
        else:
            message = "A request with this `Idempotency-Key` is still running; retry in a moment."
            response = _error(shape, 409, "IDEMPOTENCY_KEY_IN_USE", message, request_id, scope, {"Retry-After": "1"})
            await response(scope, receive, send)

    async def _run_first(self, scope: Scope, receive: Receive, shape: Shape,
                         claim: Claim) -> tuple[Message, StoredResponse]:
        """Run the request in the claim's transaction; commit it when its answer is one to keep."""
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        with request_transaction.joined(claim.transaction):
            await self.app(scope, receive, capture)
        assert start is not None, "the app finished without a response"
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in start.get("headers", [])]
        response = StoredResponse(start["status"], headers, b"".join(chunks))
        if _storable(shape, response):
            await claim.commit(response)
        # Otherwise the claim rolls back, effects and key alike: the retry runs afresh.
        return start, response

    async def _read_body(self, receive: Receive) -> tuple[bytes, bool] | None:
        """The body, and whether it is complete (it is not when it passed `max_body_bytes`)."""
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if not message.get("more_body", False):
                return bytes(body), True
            if len(body) > self.max_body_bytes:
                return bytes(body), False

    @staticmethod
    def _replaying(body: bytes, complete: bool, receive: Receive) -> Receive:
        pending = [{"type": "http.request", "body": body, "more_body": not complete}]

        async def replay() -> Message:
            return pending.pop() if pending else await receive()

        return replay

    @staticmethod
    async def _send_stored(stored: StoredResponse, send: Send) -> None:
        headers = [(name.encode("latin-1"), value.encode("latin-1"))
                   for name, value in stored.headers if name.lower() not in _FRESH_HEADERS]
        headers += [(b"content-length", str(len(stored.body)).encode()), (REPLAYED.lower().encode(), b"true")]
        await send({"type": "http.response.start", "status": stored.status, "headers": headers})
        await send({"type": "http.response.body", "body": stored.body, "more_body": False})
