"""Every error gets `extensions.code` and `extensions.requestId`; bugs are logged and masked.

Also `UserError`, the shape in which mutations return bad input.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from resolvers.errors import DomainError

log = logging.getLogger("tandem.errors")

MASKED_MESSAGE = "Internal server error."
_SUGGESTION = re.compile(r" Did you mean .*\?$")


@strawberry.type(description="A problem with the input of a mutation; nothing was changed.")
class UserError:
    field: str | None
    message: str
    code: str

    @classmethod
    def from_exception(cls, error: DomainError) -> UserError:
        return cls(field=error.field, message=error.message, code=error.code)


def shape_error(error: GraphQLError, request_id: str, *, hide_suggestions: bool) -> GraphQLError:
    """The error as a client may see it."""
    original = error.original_error
    extensions = dict(error.extensions or {})
    message = error.message
    if isinstance(original, DomainError):
        extensions["code"] = original.code
        if original.field:
            extensions["field"] = original.field
    elif original is None or isinstance(original, GraphQLError):
        # Parse, validation and variable-coercion errors: the request itself is wrong.
        extensions.setdefault("code", "BAD_USER_INPUT")
        if hide_suggestions:
            message = _SUGGESTION.sub("", message)
    else:
        log.error("unhandled error in %s", ".".join(map(str, error.path or [])) or "operation",
                  exc_info=original, extra={"request_id": request_id})
        extensions = {"code": "INTERNAL_SERVER_ERROR"}
        message = MASKED_MESSAGE
    extensions["requestId"] = request_id
    return GraphQLError(message, nodes=error.nodes, source=error.source, positions=error.positions,
                        path=error.path, original_error=None, extensions=extensions)


class ErrorCodes(SchemaExtension):
    def __init__(self, *, hide_suggestions: bool = False) -> None:
        self.hide_suggestions = hide_suggestions

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        request_id = getattr(self.execution_context.context, "request_id", "-")
        result.errors = [shape_error(e, request_id, hide_suggestions=self.hide_suggestions) for e in result.errors]
