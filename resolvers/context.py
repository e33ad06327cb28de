"""Who is asking (`Viewer`) and everything a resolver may use for one request (`Context`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from db.engine import Sessions
from db.secret_box import SecretBox
from resolvers.errors import Forbidden, Unauthenticated
from resolvers.webhook_urls import UrlPolicy

if TYPE_CHECKING:
    from loaders import Loaders
    from realtime.hub import Realtime


@dataclass(frozen=True, slots=True)
class Viewer:
    """The authenticated caller with the token's scopes: a user (through an OAuth client), or a
    service client acting for itself (client-credentials grant: `user_id` None, `client_id` set)."""

    user_id: int | None
    scopes: frozenset[str]
    role: str = "member"
    client_id: str | None = None
    token_id: str | None = None
    # The OAuth session (token family) the token belongs to; None for service clients.
    session_id: str | None = None
    # The OAuth client may run only trusted (persisted) documents.
    trusted_documents_only: bool = False
    # ...and only documents of these manifests (`tandem client create --manifest`).
    trusted_manifests: frozenset[str] = frozenset()

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def is_service(self) -> bool:
        return self.user_id is None

    @property
    def is_admin(self) -> bool:
        # Admin powers need the `admin` scope, and for a user also an admin account: a member's token
        # never becomes an admin's, and an admin's everyday token need not carry admin powers.
        return "admin" in self.scopes and (self.role == "admin" or self.is_service)


class SessionRevoker(Protocol):
    """Ends a user's OAuth sessions (refresh tokens and their access tokens), except `keep`."""

    async def __call__(self, user_id: int, *, keep: str | None) -> None: ...


class AttemptLimiter(Protocol):
    """Counts an attempt before the slow or sensitive work it guards, so parallel attempts cannot
    all pass the check before any of them is counted."""

    async def attempt(self, account: str, address: str | None) -> int:
        """Count one attempt; seconds until another is allowed when this one is over the limit, else 0."""

    async def succeeded(self, account: str, address: str | None) -> None:
        """The attempt succeeded: give back what it counted against the account."""


@dataclass(frozen=True, slots=True)
class Limits:
    default_page_size: int = 20
    max_page_size: int = 100
    max_string_length: int = 10_000
    max_documents_per_user: int = 1_000
    max_tasks_per_user: int = 10_000
    max_snapshots_per_document: int = 100


@dataclass
class Context:
    sessions: Sessions
    loaders: Loaders
    viewer: Viewer | None
    request_id: str
    limits: Limits = field(default_factory=Limits)
    # Where outbound webhooks may point; the safe (production) rule unless the app says otherwise.
    url_policy: UrlPolicy = field(default_factory=lambda: UrlPolicy(allow_private=False))
    realtime: Realtime | None = None  # pub/sub, collaborative content, presence (None: nothing published)
    # The peer's IP address, set by the transport (behind a trusted proxy: the forwarded one).
    client_address: str | None = None
    # Sign-in and password attempts per account and address (the auth layer's `LoginThrottle`).
    password_attempts: AttemptLimiter | None = None
    # Registrations per address and per IP, in a sliding window (the auth layer's).
    registrations: AttemptLimiter | None = None
    # Seals recoverable secrets (webhook signing secrets) before they are stored.
    secrets: SecretBox | None = None
    # Transports (HTTP, WebSocket) may stash per-request state here, e.g. response headers.
    extras: dict[str, object] = field(default_factory=dict)
    # Provided by the auth layer, which owns sessions; None where nothing can be revoked.
    revoke_sessions: SessionRevoker | None = None

    def require_user(self) -> int:
        """The viewer's user id, or `Unauthenticated` (anonymous) / `Forbidden` (a service client)."""
        if self.viewer is None:
            raise Unauthenticated("Sign in to do this.")
        if self.viewer.user_id is None:
            raise Forbidden("This token does not act for a user.")
        return self.viewer.user_id
