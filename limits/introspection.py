"""Who may introspect the schema: `TANDEM_INTROSPECTION` = `on` | `authenticated` | `off`.

Enforced as a validation rule, added per request for callers who may not introspect, so it holds
on every transport (HTTP, graphql-ws, SSE) and for persisted documents alike: the document cache
remembers validity per rule set, so a document that passed for a signed-in caller is validated
again, and refused, for an anonymous one. `__typename` is not introspection and is always allowed.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from typing import Any

from graphql import (
    ASTValidationRule,
    FieldNode,
    GraphQLError,
    ValidationRule,
    get_named_type,
    is_introspection_type,
    specified_rules,
)
from strawberry.extensions import SchemaExtension

from resolvers.context import Viewer
from resolvers.errors import DomainError, Forbidden, Unauthenticated

Rules = tuple[type[ASTValidationRule], ...]
# The rules every request is validated with (Strawberry's default).
DEFAULT_RULES: Rules = tuple(specified_rules)


class IntrospectionMode(StrEnum):
    ON = "on"
    AUTHENTICATED = "authenticated"
    OFF = "off"


class _Refuse(ValidationRule):
    """Reports the first field that returns an introspection type, once per document."""

    refusal: type[DomainError] = Forbidden
    message = "Introspection is disabled on this server."

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._reported = False

    def enter_field(self, node: FieldNode, *_args: Any) -> None:
        if self._reported:
            return
        named = get_named_type(self.context.get_type())
        if named is not None and is_introspection_type(named):
            self._reported = True
            self.report_error(GraphQLError(self.message, node, original_error=self.refusal(self.message)))


class IntrospectionDisabled(_Refuse):
    pass


class IntrospectionNeedsSignIn(_Refuse):
    refusal = Unauthenticated
    message = "Sign in to introspect the schema."


class IntrospectionPolicy:
    """Which validation rules a caller's requests get (the default ones, plus a refusal if needed)."""

    def __init__(self, mode: IntrospectionMode | str) -> None:
        self.mode = IntrospectionMode(mode)
        off: Rules = (IntrospectionDisabled,)
        self._signed_in: Rules = off if self.mode is IntrospectionMode.OFF else ()
        anonymous: dict[IntrospectionMode, Rules] = {
            IntrospectionMode.ON: (), IntrospectionMode.AUTHENTICATED: (IntrospectionNeedsSignIn,),
            IntrospectionMode.OFF: off}
        self._anonymous = anonymous[self.mode]
        # Whole rule sets built once: the short way for known documents looks one up per request.
        self._all_signed_in: Rules = (*DEFAULT_RULES, *self._signed_in)
        self._all_anonymous: Rules = (*DEFAULT_RULES, *self._anonymous)

    def extra_rules(self, viewer: Viewer | None) -> Rules:
        """What this caller's requests are validated with beyond the default rules."""
        return self._anonymous if viewer is None else self._signed_in

    def rules(self, viewer: Viewer | None) -> Rules:
        """Every rule this caller's requests are validated with."""
        return self._all_anonymous if viewer is None else self._all_signed_in

    def extension(self) -> IntrospectionGate:
        """A fresh per-request schema extension; list it before the document cache's."""
        return IntrospectionGate(self)


class IntrospectionGate(SchemaExtension):
    def __init__(self, policy: IntrospectionPolicy) -> None:
        super().__init__()
        self.policy = policy

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        viewer = getattr(context.context, "viewer", None)
        extra = self.policy.extra_rules(viewer if isinstance(viewer, Viewer) else None)
        if extra:
            context.validation_rules = (*context.validation_rules, *extra)
        yield
