"""What a request that failed outside every handler answers: never uvicorn's plain-text 500.

`Edge` catches what escapes an endpoint before the response started. A dependency that is down (the
database, Redis) answers 503 with `Retry-After`, anything else 500; GraphQL paths in the GraphQL shape
(`errors[].extensions.code`), every other path in the REST error shape. One log line each, with the
request id; no stack trace or SQL reaches the client.
"""

from __future__ import annotations

import logging

import orjson
from redis.exceptions import ClusterError, RedisClusterException, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger("tandem.errors")

RETRY_AFTER_SECONDS = 5
_DATABASE = (OperationalError, InterfaceError, PoolTimeout)
# A cluster mid-failover (CLUSTERDOWN, TRYAGAIN, slots no node covers) is Redis unavailable too.
_REDIS = (RedisConnectionError, RedisTimeoutError, ClusterError, TryAgainError, RedisClusterException)


def unavailable_dependency(exc: BaseException) -> str | None:
    """"database" or "redis" when `exc` (or what caused it) says that dependency cannot be reached."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _DATABASE) or (isinstance(current, DBAPIError) and current.connection_invalidated):
            return "database"
        if isinstance(current, _REDIS):
            return "redis"
        if isinstance(current, ConnectionRefusedError | ConnectionResetError | TimeoutError):
            return "database"  # drivers raise these while connecting (asyncpg, aiosqlite's thread)
        current = current.__cause__ or current.__context__
    return None


def failure_response(exc: Exception, *, graphql: bool, request_id: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, header fields and body for a request that failed with `exc`; logs it once."""
    dependency = unavailable_dependency(exc)
    if dependency is not None:
        log.error("request failed: the %s is unavailable (%s)", dependency, type(exc).__name__,
                  extra={"request_id": request_id, "dependency": dependency})
        status, message = 503, f"The service is unavailable ({dependency}); try again shortly."
    else:
        log.error("request failed: unhandled error", exc_info=exc, extra={"request_id": request_id})
        status, message = 500, "Internal server error."
    code = "INTERNAL_SERVER_ERROR"
    body: dict[str, object]
    if graphql:
        body = {"errors": [{"message": message, "extensions": {"code": code, "requestId": request_id}}]}
    else:
        body = {"error": {"code": code, "message": message, "details": None, "requestId": request_id}}
    headers = [(b"content-type", b"application/json")]
    if status == 503:
        headers.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
    return status, headers, orjson.dumps(body)
