"""Strawberry permission classes: read as predicates, fail with our error codes."""

from __future__ import annotations

from typing import Any, ClassVar

from strawberry.permission import BasePermission
from strawberry.types import Info

from resolvers.context import Context
from resolvers.errors import Forbidden, Unauthenticated


class IsAuthenticated(BasePermission):
    message = "Sign in to do this."
    # The answer depends on the request, never on the object: the batched executor may ask once for all
    # the objects of a list (schema/execution.py).
    request_only: ClassVar[bool] = True

    def has_permission(self, source: Any, info: Info[Context, Any], **kwargs: Any) -> bool:
        return info.context.viewer is not None

    def on_unauthorized(self) -> None:
        raise Unauthenticated(self.message)


class HasScope(BasePermission):
    """The caller's token carries `scope` (anonymous callers are told to sign in first)."""

    request_only: ClassVar[bool] = True  # see IsAuthenticated

    def __init__(self, scope: str) -> None:
        self.scope = scope

    def has_permission(self, source: Any, info: Info[Context, Any], **kwargs: Any) -> bool:
        viewer = info.context.viewer
        if viewer is None:
            # Raised here rather than in on_unauthorized, which cannot see who asked.
            raise Unauthenticated("Sign in to do this.")
        return viewer.has_scope(self.scope)

    def on_unauthorized(self) -> None:
        raise Forbidden(f"This needs the `{self.scope}` scope, which your token does not carry.")


def require_scope(context: Context, scope: str) -> None:
    """For fields whose needed scope depends on an argument (`node(id:)`)."""
    if context.viewer is None:
        raise Unauthenticated("Sign in to do this.")
    if not context.viewer.has_scope(scope):
        raise Forbidden(f"This needs the `{scope}` scope, which your token does not carry.")
