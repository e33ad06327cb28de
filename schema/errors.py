"""Every error gets `extensions.code` and `extensions.requestId`; bugs are logged and masked.

Shaping happens in `Schema.process_errors` (see `schema/__init__.py`), which Strawberry calls on
every path — parse, validation, execution, subscriptions — before any transport formats a result.
Also `UserError`, the shape in which mutations return bad input.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import strawberry
from graphql import GraphQLError
from strawberry.schema.exceptions import InvalidOperationTypeError

from resolvers.errors import DomainError
from schema.directives import FREE

log = logging.getLogger("tandem.errors")

MASKED_MESSAGE = "Internal server error."


@strawberry.type(description="A problem with the input of a mutation; nothing was changed.", directives=[FREE])
class UserError:
    field: str | None
    message: str
    code: str

    @classmethod
    def from_exception(cls, error: DomainError) -> UserError:
        return cls(field=error.field, message=error.message, code=error.code)


def shape_errors(errors: Iterable[GraphQLError], request_id: str) -> None:
    """Rewrite each error, in place, into what a client may see. Safe to apply twice."""
    for error in errors:
        original = error.original_error
        extensions = dict(error.extensions or {})
        if isinstance(original, DomainError):
            extensions["code"] = original.code
            if original.field:
                extensions["field"] = original.field
        elif isinstance(original, InvalidOperationTypeError):
            # e.g. a query sent over the legacy graphql-ws protocol, which runs subscriptions only.
            extensions["code"] = "BAD_USER_INPUT"
            error.message = f"This transport does not run {original.operation_type.value} operations."
        elif original is None or isinstance(original, GraphQLError):
            # Parse, validation and variable-coercion errors: the request itself is wrong.
            extensions.setdefault("code", "BAD_USER_INPUT")
        else:
            log.error("unhandled error in %s", ".".join(map(str, error.path or [])) or "operation",
                      exc_info=original, extra={"request_id": request_id})
            extensions = {"code": "INTERNAL_SERVER_ERROR"}
            error.message = MASKED_MESSAGE
        extensions["requestId"] = request_id
        error.extensions = extensions
        error.original_error = None
