"""Builds the per-request `Context`: verified viewer, fresh loaders, request id, limits."""

from __future__ import annotations

from auth.authenticate import Authenticator, Identity
from auth.viewer import bearer_token
from db import request_transaction
from db.engine import Sessions
from db.reads import Reads
from db.secret_box import SecretBox
from loaders import Loaders
from realtime.hub import Realtime
from resolvers.context import AttemptLimiter, Context, Limits, SessionRevoker, Viewer
from resolvers.errors import Unauthenticated
from resolvers.webhook_urls import UrlPolicy

SERVICE_ROLE = "service"


class ContextFactory:
    def __init__(
        self, sessions: Sessions, authenticator: Authenticator, limits: Limits,
        revoke_sessions: SessionRevoker | None = None, url_policy: UrlPolicy | None = None,
        realtime: Realtime | None = None, *, reads: Reads, password_attempts: AttemptLimiter | None = None,
        registrations: AttemptLimiter | None = None, secrets: SecretBox | None = None,
    ) -> None:
        self.secrets = secrets
        self.password_attempts = password_attempts
        self.registrations = registrations
        self.sessions = sessions
        self.reads = reads
        self.authenticator = authenticator
        self.limits = limits
        self.revoke_sessions = revoke_sessions
        self.url_policy = url_policy or UrlPolicy(allow_private=False)
        self.realtime = realtime

    def _reads(self) -> Reads:
        # Inside a request's transaction (an Idempotency-Key), reads must see its uncommitted writes.
        transaction = request_transaction.current()
        return self.reads if transaction is None else transaction.reads

    def anonymous(self, request_id: str) -> Context:
        return self._context(Loaders(self.sessions, None, reads=self._reads()), None, request_id)

    async def __call__(self, authorization: str | None, request_id: str) -> Context:
        """Raises `Unauthenticated` for a token that is present but not good: never silently anonymous."""
        token = bearer_token(authorization)
        if token is None:
            return self.anonymous(request_id)
        return await self.for_identity(await self.authenticator.identify(token), request_id)

    async def for_identity(self, identity: Identity, request_id: str) -> Context:
        """The context of a caller the authenticator has already identified (the WebSocket endpoint
        keeps the identity: it watches the token's expiry and revocation while the socket is open)."""
        loaders = Loaders(self.sessions, identity.user_id, reads=self._reads())
        if identity.user_id is None:
            viewer = Viewer(None, identity.scopes, SERVICE_ROLE, identity.client_id, identity.token_id,
                            trusted_documents_only=identity.trusted_documents_only,
                            trusted_manifests=identity.trusted_manifests)
            return self._context(loaders, viewer, request_id)
        user = await loaders.load_viewer(identity.user_id)
        if user is None:
            raise Unauthenticated("The access token's user no longer exists.")
        viewer = Viewer(user.id, identity.scopes, user.role, identity.client_id, identity.token_id,
                        identity.session_id, identity.trusted_documents_only, identity.trusted_manifests)
        return self._context(loaders, viewer, request_id)

    def _context(self, loaders: Loaders, viewer: Viewer | None, request_id: str) -> Context:
        return Context(self.sessions, loaders, viewer, request_id, self.limits, self.url_policy,
                       revoke_sessions=self.revoke_sessions, realtime=self.realtime,
                       password_attempts=self.password_attempts, registrations=self.registrations,
                       secrets=self.secrets)
