"""Domain errors. Each class carries the `extensions.code` from DESIGN.md that the schema reports.

    DomainError
    ├── BadUserInput      BAD_USER_INPUT   (mutations turn it into `userErrors`)
    │   └── LimitExceeded LIMIT_EXCEEDED   (a quota: what a user may own, what a document may keep)
    ├── NotFound          NOT_FOUND        (also "exists, but not yours": never leak existence)
    ├── Unauthenticated   UNAUTHENTICATED
    ├── Forbidden         FORBIDDEN        (you can see it, but may not do this)
    ├── QueryTooDeep      QUERY_TOO_DEEP   (limits: nesting, checked before validation)
    ├── QueryTooComplex   QUERY_TOO_COMPLEX (limits: aliases, tokens, directives, root fields, batch, cost)
    └── RateLimited       RATE_LIMITED     (limits: the caller's cost budget is spent for now)
"""

from __future__ import annotations


class DomainError(Exception):
    code = "BAD_USER_INPUT"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class BadUserInput(DomainError): ...


class LimitExceeded(BadUserInput):
    code = "LIMIT_EXCEEDED"


class NotFound(DomainError):
    code = "NOT_FOUND"


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class QueryTooDeep(DomainError):
    code = "QUERY_TOO_DEEP"


class QueryTooComplex(DomainError):
    code = "QUERY_TOO_COMPLEX"


class RateLimited(DomainError):
    """`retry_after`: whole seconds until the budget covers the request again (None: unknown)."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
