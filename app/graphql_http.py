"""GraphQL over HTTP, per the GraphQL-over-HTTP spec.

- POST bodies must be `application/json` (UTF-8): anything else is 415, so a cross-site HTML form can
  never reach a resolver (it cannot send that content type without a CORS preflight).
- GET runs queries only; a mutation over GET is 405 with `Allow: POST`.
- `application/graphql-response+json` when the client accepts it, with 4xx for requests that never
  executed; legacy `application/json` (always 200 once the request is well-formed) otherwise.
- Persisted queries happen in one step before execution, `_resolve_operation`: `query`,
  `extensions.persistedQuery` (APQ) or `documentId` become the text to run (`app/persisted.py`).
  A document already known to be valid then runs the short way (`app/prepared.py`).
  GET answers carry `ETag`/`Cache-Control` (`app/http_cache.py`).
- A POST body may be a JSON array of requests (a batch, at most `max_batch_operations`): they run in
  order, each on its own context and charged on its own, and the answer is the array of their
  results (HTTP 429 only when every one of them was throttled).
- The rate limiter sets response headers and the status (429, or 503 when failing closed) through
  the context's `extras`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import orjson
from graphql import GraphQLError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from app.access_log import access_note
from app.context import ContextFactory
from app.http_cache import cache_get_response, shared_cacheable
from app.metrics import Metrics
from app.persisted import PersistedQueries
from app.prepared import PreparedOperations
from app.request_id import current_request_id
from auth.authenticate import bearer_challenge
from auth.revocation import RevocationUnavailable
from limits.cost_limit import RESPONSE_HEADERS, RESPONSE_STATUS
from persisted_queries.document_cache import DOCUMENT_HASH
from persisted_queries.resolve import PersistedQueryError, ResolvedOperation
from resolvers.context import Context
from resolvers.errors import Unauthenticated
from resolvers.rate_limit import PER_CALLER
from rest.header_fields import header_field
from schema import TandemSchema
from schema.execution import EXECUTOR

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
# GET parameters that make a request a GraphQL request rather than a browser opening GraphiQL.
_PARAMETERS = frozenset({"query", "extensions", "documentId"})


class RequestError(Exception):
    """A request that cannot be executed at all; answered with `status` and one error."""

    def __init__(
        self, status: int, message: str, code: str = "BAD_USER_INPUT", headers: dict[str, str] | None = None,
        *, json_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.json_status = json_status or status  # for legacy `application/json` clients


def _field(request: Request, name: bytes) -> str | None:
    return header_field(request.scope, name)


def _media_type(request: Request) -> str:
    return _media_type_for(_field(request, b"accept") or "")


@lru_cache(maxsize=256)  # clients send the same few `Accept` values over and over
def _media_type_for(accept: str) -> str:
    """The spec's media type when the client accepts it (q > 0); legacy JSON otherwise."""
    for item in accept.split(","):
        mime, *params = (part.strip() for part in item.split(";"))
        if mime.lower() != GRAPHQL_RESPONSE:
            continue
        quality = next((p.partition("=")[2] for p in params if p.lower().startswith("q=")), "1")
        try:
            return GRAPHQL_RESPONSE if float(quality) > 0 else JSON
        except ValueError:
            return JSON
    return JSON


_CONTENT_TYPES = {kind: f"{kind}; charset=utf-8".encode("latin-1") for kind in (GRAPHQL_RESPONSE, JSON)}


class JSONAnswer(Response):
    """A Starlette `Response` for a JSON body, made without `Response.__init__`, which renders the body
    again and searches the header fields for `content-length` and `content-type`: ours never carry them."""

    def __init__(self, body: bytes, status: int, media_type: str, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self.body = body
        self.background = None
        raw = [(b"content-length", str(len(body)).encode("latin-1")), (b"content-type", _CONTENT_TYPES[media_type])]
        if headers:
            raw += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
        self.raw_headers = raw


def _json_response(
    body: dict[str, Any], status: int, media_type: str, headers: dict[str, str] | None = None
) -> Response:
    return JSONAnswer(orjson.dumps(body), status, media_type, headers)


def _json_field(value: Any, name: str, kind: type) -> Any:
    if value is None or isinstance(value, kind):
        return value
    raise RequestError(400, f"`{name}` must be a {'string' if kind is str else 'JSON object'}.")


def _code(error: GraphQLError) -> str:
    return str((error.extensions or {}).get("code", "UNKNOWN"))


def _decode_json_param(value: str | None, name: str) -> Any:
    if value is None or value == "":
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        raise RequestError(400, f"The `{name}` parameter is not valid JSON.") from None


class GraphQLHTTP:
    def __init__(
        self,
        schema: TandemSchema,
        context_factory: ContextFactory,
        metrics: Metrics,
        persisted: PersistedQueries,
        *,
        max_body_bytes: int,
        graphiql: Callable[[], Response] | None,
        get_max_age: int = 0,
        max_batch_operations: int = 0,
        prepared: PreparedOperations | None = None,
    ) -> None:
        self.schema = schema
        self.prepared = prepared
        self.context_factory = context_factory
        self.metrics = metrics
        self.persisted = persisted
        self.max_body_bytes = max_body_bytes
        self.graphiql = graphiql
        self.get_max_age = get_max_age
        self.max_batch_operations = max_batch_operations

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """An ASGI app of its own: Starlette's per-endpoint wrapper would add a layer to every request."""
        async with self.context_factory.reads.per_request():  # the request's reads: one connection
            response = await self.handle(Request(scope, receive))
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        media_type = _media_type(request)
        try:
            if request.method == "GET":
                if _PARAMETERS.isdisjoint(request.query_params) and "text/html" in request.headers.get("accept", ""):
                    if self.graphiql is not None:
                        return self.graphiql()
                    raise RequestError(404, "The GraphQL explorer is disabled here.", "NOT_FOUND")
                params = self._get_params(request)
                allowed = {OperationType.QUERY}
            elif request.method == "POST":
                body = await self._post_params(request)
                allowed = {OperationType.QUERY, OperationType.MUTATION}
                if isinstance(body, list):
                    return await self._execute_batch(request, body, allowed, media_type)
                params = body
            else:
                raise RequestError(405, "Use GET or POST.", headers={"Allow": "GET, POST"})
            return await self._execute(request, params, allowed, media_type)
        except RequestError as error:
            return self._error(error, media_type)

    def _get_params(self, request: Request) -> dict[str, Any]:
        query = request.query_params
        return {
            "query": query.get("query"),
            "variables": _decode_json_param(query.get("variables"), "variables"),
            "operationName": query.get("operationName") or None,
            "extensions": _decode_json_param(query.get("extensions"), "extensions"),
            "documentId": query.get("documentId") or None,
        }

    async def _post_params(self, request: Request) -> dict[str, Any] | list[Any]:
        content_type = _field(request, b"content-type") or ""
        mime, _, options = content_type.partition(";")
        charset = "utf-8"
        if "charset=" in options.lower():
            charset = options.strip().lower().removeprefix("charset=").strip('"')
        if mime.strip().lower() != JSON or charset not in ("utf-8", "utf8"):
            raise RequestError(415, "Send the request body as `Content-Type: application/json` (UTF-8).",
                               headers={"Accept-Post": JSON})
        body = await self._read_body(request)
        try:
            params = orjson.loads(body)  # orjson also refuses bodies that are not valid UTF-8
        except orjson.JSONDecodeError:
            raise RequestError(400, "The request body is not valid JSON (UTF-8).") from None
        if isinstance(params, list):
            return self._batch(params)
        if not isinstance(params, dict):
            raise RequestError(400, "The request body must be a JSON object with a `query`.")
        return params

    def _batch(self, params: list[Any]) -> list[Any]:
        if self.max_batch_operations == 0:
            raise RequestError(400, "Batched requests are not supported; send one operation per request.")
        if not params:
            raise RequestError(400, "The batch is empty.")
        if len(params) > self.max_batch_operations:
            raise RequestError(
                400, f"The batch has {len(params)} operations; the limit is {self.max_batch_operations}.",
                "QUERY_TOO_COMPLEX",
            )
        return params

    async def _execute_batch(
        self, request: Request, batch: list[Any], allowed: set[OperationType], media_type: str
    ) -> Response:
        bodies: list[dict[str, Any]] = []
        headers: dict[str, str] = {}
        throttled = 0
        for params in batch:
            try:
                if not isinstance(params, dict):
                    raise RequestError(400, "Each request in a batch must be a JSON object with a `query`.")
                response = await self._execute(request, params, allowed, media_type)
            except RequestError as error:
                response = self._error(error, media_type)
            bodies.append(orjson.loads(response.body))
            throttled += response.status_code == 429
            headers.update((k, v) for k, v in response.headers.items()
                           if k.lower() in ("ratelimit", "ratelimit-policy", "retry-after"))
        status = 429 if throttled == len(batch) else 200
        if status != 429:
            headers.pop("retry-after", None)
        return JSONAnswer(orjson.dumps(bodies), status, media_type, headers)

    async def _read_body(self, request: Request) -> bytes:
        declared = _field(request, b"content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise RequestError(413, f"The request body is larger than {self.max_body_bytes} bytes.")
        body = b""
        while True:  # `receive` itself: `request.stream()` adds an async generator per request
            message = await request.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect
            chunk: bytes = message.get("body", b"")
            body += chunk  # one message, nearly always: nothing is copied then
            if len(body) > self.max_body_bytes:
                raise RequestError(413, f"The request body is larger than {self.max_body_bytes} bytes.")
            if not message.get("more_body", False):
                return body

    async def _execute(
        self, request: Request, params: dict[str, Any], allowed: set[OperationType], media_type: str
    ) -> Response:
        _json_field(params.get("query"), "query", str)
        variables = _json_field(params.get("variables"), "variables", dict)
        operation_name = _json_field(params.get("operationName"), "operationName", str)
        _json_field(params.get("extensions"), "extensions", dict)
        request_id = current_request_id.get()
        try:
            context = await self.context_factory(_field(request, b"authorization"), request_id)
        except Unauthenticated as exc:
            raise RequestError(401, exc.message, "UNAUTHENTICATED",
                               headers={"WWW-Authenticate": bearer_challenge("invalid_token", exc.message)}) from None
        except RevocationUnavailable as exc:
            raise RequestError(503, str(exc), "INTERNAL_SERVER_ERROR", headers={"Retry-After": "5"}) from None
        context.client_address = request.client.host if request.client else None
        operation = await self._resolve_operation(params, context)
        note = access_note(request.scope)
        note.operation, note.document = operation_name, operation.sha256[:16]
        note.client_id = context.viewer.client_id if context.viewer is not None else None
        prepared = (self.prepared.find(operation.sha256, operation_name, context.viewer)
                    if self.prepared is not None else None)
        try:
            if prepared is not None:
                assert self.prepared is not None
                result = await self.prepared.run(prepared, context, variables, operation_name, allowed)
            else:
                result = await self.schema.execute(
                    operation.query, variable_values=variables, context_value=context,
                    operation_name=operation_name, allowed_operation_types=allowed,
                )
        except InvalidOperationTypeError as exc:
            if exc.operation_type == OperationType.MUTATION:
                raise RequestError(405, "Mutations need POST.", headers={"Allow": "POST"}) from None
            raise RequestError(400, "Subscriptions need a WebSocket connection to /graphql.") from None
        except CannotGetOperationTypeError:  # `operationName` names no operation of the document
            raise RequestError(400, f"The document has no operation named {operation_name!r}.",
                               json_status=200) from None
        per_caller = bool(context.extras.get(PER_CALLER))
        if request.method == "GET" and shared_cacheable(
            anonymous=_field(request, b"authorization") is None, has_errors=bool(result.errors), per_caller=per_caller,
        ):
            _without_caller_budget(result, context)
        executed = _executed(result)
        if isinstance(executor := context.extras.get(EXECUTOR), str):
            self.metrics.graphql_executions.labels(executor).inc()
        await self.persisted.after_execution(operation, executed=executed)
        response = self._result(result, media_type, context)
        if context.viewer is None and any(_code(error) == "UNAUTHENTICATED" for error in result.errors or []):
            # RFC 6750 §3.1: the request carried no token but needs one; no error code, just the challenge.
            response.status_code = 401
            response.headers["WWW-Authenticate"] = bearer_challenge()
        if request.method == "GET":
            return cache_get_response(request, response, has_errors=bool(result.errors), max_age=self.get_max_age,
                                      data=orjson.dumps(result.data), per_caller=per_caller)
        return response

    async def _resolve_operation(self, params: dict[str, Any], context: Context) -> ResolvedOperation:
        """Persisted queries: `query`, `extensions.persistedQuery` or `documentId` → the text to run."""
        try:
            operation = await self.persisted.resolve(params, context.viewer)
        except PersistedQueryError as exc:
            raise RequestError(exc.status, exc.message, exc.code, json_status=exc.json_status) from None
        context.extras[DOCUMENT_HASH] = operation.sha256  # the document cache needs not hash it again
        return operation

    def _result(self, result: ExecutionResult, media_type: str, context: Context) -> Response:
        headers = context.extras.get(RESPONSE_HEADERS)
        body: dict[str, Any] = {}
        errors: list[GraphQLError] = list(result.errors or [])
        if errors:
            body["errors"] = [error.formatted for error in errors]
            for error in errors:
                self.metrics.graphql_errors.labels(_code(error)).inc()
        executed = _executed(result)
        if executed:
            body["data"] = result.data
        if result.extensions:
            body["extensions"] = result.extensions
        status = 200 if executed or media_type == JSON else 400
        limited = context.extras.get(RESPONSE_STATUS)
        if isinstance(limited, int):
            status = limited  # 429 or 503 from the rate limiter, whatever the media type
        return _json_response(body, status, media_type, headers if isinstance(headers, dict) else None)

    def _error(self, error: RequestError, media_type: str) -> Response:
        self.metrics.graphql_errors.labels(error.code).inc()
        body = {"errors": [{"message": error.message,
                            "extensions": {"code": error.code, "requestId": current_request_id.get()}}]}
        # Legacy JSON clients still get 4xx for requests that are not GraphQL requests at all.
        status = error.json_status if media_type == JSON else error.status
        return _json_response(body, status, media_type, error.headers)


def _without_caller_budget(result: ExecutionResult, context: Context) -> None:
    """A shared cache (a CDN) hands this answer to other callers: it must not carry this caller's
    budget. The operation's cost stays (the same for everyone); `throttleStatus` and the `RateLimit`
    header fields go."""
    cost = (result.extensions or {}).get("cost")
    if isinstance(cost, dict):
        cost.pop("throttleStatus", None)
    headers = context.extras.get(RESPONSE_HEADERS)
    if isinstance(headers, dict):
        for name in ("RateLimit", "RateLimit-Policy"):
            headers.pop(name, None)


def _executed(result: ExecutionResult) -> bool:
    """Execution started (so the document was valid), as opposed to a request refused before it."""
    return result.data is not None or any(error.path for error in result.errors or [])
