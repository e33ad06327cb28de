"""Who is asking (`Viewer`) and everything a resolver may use for one request (`Context`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from db.engine import Sessions
from resolvers.errors import Forbidden, Unauthenticated

if TYPE_CHECKING:
    from loaders import Loaders
    from realtime.hub import Realtime


@dataclass(frozen=True, slots=True)
class Viewer:
    """The authenticated caller: a user (possibly through an OAuth client) with the token's scopes."""

    user_id: int | None
    scopes: frozenset[str]
    role: str = "member"
    client_id: str | None = None
    token_id: str | None = None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class Limits:
    default_page_size: int = 20
    max_page_size: int = 100
    max_string_length: int = 10_000


@dataclass
class Context:
    sessions: Sessions
    loaders: Loaders
    viewer: Viewer | None
    request_id: str
    limits: Limits = field(default_factory=Limits)
    realtime: Realtime | None = None  # pub/sub, collaborative content, presence (None: nothing published)
    # Transports (HTTP, WebSocket) may stash per-request state here, e.g. response headers.
    extras: dict[str, object] = field(default_factory=dict)

    def require_user(self) -> int:
        """The viewer's user id, or `Unauthenticated` (anonymous) / `Forbidden` (a service client)."""
        if self.viewer is None:
            raise Unauthenticated("Sign in to do this.")
        if self.viewer.user_id is None:
            raise Forbidden("This token does not act for a user.")
        return self.viewer.user_id
