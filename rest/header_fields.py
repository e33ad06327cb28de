"""A request's header fields by (lowercase) name, read once per request and kept in its ASGI scope.

Starlette's `Headers` scans the whole list on every `get`; the edge, the idempotency middleware and
the GraphQL transport ask for seven fields between them on every request.
"""

from __future__ import annotations

from starlette.types import Scope

_KEY = "tandem.fields"


def header_fields(scope: Scope) -> dict[bytes, bytes]:
    """Raw names and values; the first field of a name wins, as with `Headers.get`."""
    found: dict[bytes, bytes] | None = scope.get(_KEY)
    if found is None:
        found = scope[_KEY] = {name: value for name, value in reversed(scope["headers"])}
    return found


def header_field(scope: Scope, name: bytes) -> str | None:
    value = header_fields(scope).get(name)
    return None if value is None else value.decode("latin-1")
