"""`Edge`: the one ASGI middleware every HTTP response passes through: request id, metrics, security
headers and CORS.

They used to be three middleware classes plus Starlette's `CORSMiddleware` on every request, each
wrapping `send` again and parsing the headers again (~50 µs of a `{ __typename }` request on the
bench machine, measured). Here the request headers are read once and the response headers edited
once, as raw ASGI lists. A request without an `Origin` header (servers, mobile apps, curl) is not a
CORS request: it skips `CORSMiddleware` and only gets the `Vary: Origin` that middleware would add.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.access_log import log_request
from app.failures import failure_response
from app.metrics import Metrics
from app.request_id import current_request_id, new_request_id
from rest.header_fields import header_fields

log = logging.getLogger("tandem.errors")

# JSON APIs never need to run scripts or be framed; pages that do (GraphiQL) set their own CSP.
DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
_REQUEST_ID = b"x-request-id"
_ORIGIN = b"origin"
_VARY = b"vary"


def security_headers(*, hsts: bool) -> list[tuple[bytes, bytes]]:
    """Set on every response that did not set its own (raw ASGI headers: lowercase names, latin-1)."""
    defaults = {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Content-Security-Policy": DEFAULT_CSP,
        "Cache-Control": "no-store",
    }
    if hsts:
        defaults["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in defaults.items()]


class Edge:
    """`direct`: HTTP paths answered by their own ASGI app, past Starlette's exception middleware and
    router (the GraphQL endpoint handles its own errors and methods; every request saves ~15 µs)."""

    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, routes: Iterable[str], hsts: bool,
        cors_origins: Sequence[str], cors: dict[str, Any], direct: dict[str, ASGIApp] | None = None,
        access_log: bool = True,
    ) -> None:
        self.app = app
        self.access_log = access_log
        self.cors = CORSMiddleware(app, allow_origins=cors_origins, **cors)
        # (without CORS, with CORS) for each direct path.
        self.direct = {path: (target, CORSMiddleware(target, allow_origins=cors_origins, **cors))
                       for path, target in (direct or {}).items()}
        self.metrics = metrics
        self.routes = frozenset(routes)
        self.defaults = security_headers(hsts=hsts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fields = header_fields(scope)
        cross_origin = _ORIGIN in fields
        request_id = new_request_id(fields.get(_REQUEST_ID, b"").decode("latin-1"))
        token = current_request_id.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id  # for rest/, which does not import app/
        # Unknown paths share one label so scanners cannot blow up the metric's cardinality.
        route = scope["path"] if scope["path"] in self.routes else "other"
        started = time.perf_counter()
        status = 500
        own = (_REQUEST_ID, request_id.encode("latin-1"))
        defaults = self.defaults

        started_response = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status = message["status"]
                started_response = True
                message["headers"] = _edit(message.get("headers", ()), defaults, own, vary_origin=not cross_origin)
            await send(message)

        direct = self.direct.get(scope["path"])
        if direct is not None:
            target = direct[1] if cross_origin else direct[0]
        else:
            target = self.cors if cross_origin else self.app
        try:
            await target(scope, receive, send_with_headers)
        except Exception as exc:
            if started_response:  # too late for an answer of our own; the server ends the response
                log.error("response failed after it started", exc_info=exc, extra={"request_id": request_id})
                return
            status_code, headers, body = failure_response(
                exc, graphql=scope["path"].startswith("/graphql"), request_id=request_id)
            await send_with_headers({"type": "http.response.start", "status": status_code,
                                     "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send_with_headers({"type": "http.response.body", "body": body})
        finally:
            elapsed = time.perf_counter() - started
            self._observe(scope["method"], route, str(status), elapsed)
            if self.access_log:
                log_request(scope, route, status, elapsed)
            current_request_id.reset(token)

    def _observe(self, method: str, route: str, status: str, seconds: float) -> None:
        self.metrics.requests.labels(method, route, status).inc()  # lock-free: app/loop_metrics.py
        self.metrics.latency.labels(route).observe(seconds)


def _edit(
    headers: Iterable[tuple[bytes, bytes]], defaults: list[tuple[bytes, bytes]], request_id: tuple[bytes, bytes],
    *, vary_origin: bool,
) -> list[tuple[bytes, bytes]]:
    """The response's headers, plus the defaults it did not set, our request id, and `Origin` in
    `Vary` (as one field, as `CORSMiddleware` does for requests without an `Origin`)."""
    edited: list[tuple[bytes, bytes]] = []
    present: set[bytes] = set()
    varies: list[bytes] = []
    for item in headers:
        name = item[0].lower()
        if name == _VARY and vary_origin:
            varies.append(item[1])
        elif name != _REQUEST_ID:
            edited.append(item)
            present.add(name)
    edited += [item for item in defaults if item[0] not in present]
    if vary_origin:
        edited.append((_VARY, b", ".join([*varies, b"Origin"])))
    edited.append(request_id)
    return edited
