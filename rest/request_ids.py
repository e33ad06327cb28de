"""The request id that the outermost middleware (`app.middleware`) gave this request.

It travels in the ASGI scope's `state`, because `rest` does not import `app`; "-" outside a request.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.types import Scope

STATE_KEY = "request_id"


def request_id_in(scope: Scope) -> str:
    state = scope.get("state") or {}
    value = state.get(STATE_KEY, "-") if isinstance(state, dict) else "-"
    return str(value)


def request_id_of(connection: HTTPConnection) -> str:
    return request_id_in(connection.scope)
