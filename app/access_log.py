"""One access line per HTTP request, from `Edge`, in the same JSON as every other log line.

The edge knows the method, route, status and duration; the GraphQL transport adds what only it knows
(operation name, document hash, OAuth client) to the request's `AccessNote`, which travels in the ASGI
scope's state. Paths and query strings are not logged: a GET query string carries the document and its
variables. Off with `TANDEM_ACCESS_LOG=false`, or by setting the `tandem.access` logger above INFO.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("tandem.access")
_NOTE = "tandem.access"


@dataclass(slots=True)
class AccessNote:
    """What a handler adds to its request's access line."""

    operation: str | None = None
    document: str | None = None  # the document's SHA-256, shortened
    client_id: str | None = None


def access_note(scope: MutableMapping[str, Any]) -> AccessNote:
    """The request's note, made on first use."""
    state = scope.setdefault("state", {})
    note = state.get(_NOTE)
    if not isinstance(note, AccessNote):
        note = state[_NOTE] = AccessNote()
    return note


def log_request(scope: MutableMapping[str, Any], route: str, status: int, seconds: float) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    client = scope.get("client")
    fields: dict[str, object] = {
        "method": scope.get("method"), "route": route, "status": status, "duration_ms": round(seconds * 1000, 3),
        "client_address": client[0] if client else None,
    }
    note = scope.get("state", {}).get(_NOTE)
    if isinstance(note, AccessNote):
        fields.update(operation=note.operation, document=note.document, client_id=note.client_id)
    trace_id = _trace_id()
    if trace_id is not None:
        fields["trace_id"] = trace_id
    log.info("%s %s %s", scope.get("method"), route, status, extra=fields)


def _trace_id() -> str | None:
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
