"""From a bearer token to who is calling: our own JWTs, service clients, and trusted external issuers.

Every refusal is `Unauthenticated`, which the transports turn into 401 with a `WWW-Authenticate`
challenge (RFC 6750 §3): a token that is present but not good is never served as anonymous.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import anyio.to_thread

from auth.external import ExternalIssuers, effective_scopes, local_user
from auth.oauth.data import client_by_id
from auth.revocation import RevocationList
from auth.tokens import InvalidToken, TokenService
from db.engine import Sessions
from resolvers.errors import Unauthenticated

# ASCII only: str.isdigit() also accepts superscripts and other scripts' digits.
_USER_SUBJECT = re.compile(r"[1-9][0-9]{0,9}")


@dataclass(frozen=True)
class Identity:
    """A verified token: a user (`user_id`) or a service client acting for itself (`user_id` None)."""

    user_id: int | None
    scopes: frozenset[str]
    client_id: str | None
    token_id: str | None
    session_id: str | None = None
    trusted_documents_only: bool = False
    expires_at: int | None = None  # the token's `exp` (Unix seconds)
    trusted_manifests: frozenset[str] = frozenset()


def user_id_of(subject: str) -> int | None:
    """The user id a subject names; None when it is not a user id at all."""
    if not _USER_SUBJECT.fullmatch(subject) or int(subject) > 2**31 - 1:
        return None
    return int(subject)


def bearer_challenge(error: str | None = None, description: str | None = None, scope: str | None = None) -> str:
    """A `WWW-Authenticate` value (RFC 6750 §3); no error code when the request carried no token (§3.1)."""
    parts = ['realm="tandem"']
    for name, value in (("error", error), ("error_description", description), ("scope", scope)):
        if value:
            parts.append(f'{name}="{value.replace(chr(92), "").replace(chr(34), chr(39))}"')
    return "Bearer " + ", ".join(parts)


class Authenticator:
    def __init__(
        self, sessions: Sessions, tokens: TokenService, revocations: RevocationList, external: ExternalIssuers
    ) -> None:
        self.sessions = sessions
        self.tokens = tokens
        self.revocations = revocations
        self.external = external

    async def identify(self, token: str) -> Identity:
        config = self.external.issuer_of(token)
        if config is not None and config.accept_at_graphql:
            return await self._external(token)
        try:
            claims = self.tokens.verify(token)
        except InvalidToken as exc:
            raise Unauthenticated(str(exc)) from None
        if await self.revocations.is_revoked(claims.token_id, claims.session_id):
            raise Unauthenticated("The access token has been revoked.")
        user_id = user_id_of(claims.subject)
        if user_id is None:
            # RFC 9068 §2.2: client-credentials tokens name the client itself as subject.
            if claims.client_id is None or claims.subject != claims.client_id:
                raise Unauthenticated("The access token does not name a user or a client.")
            if await client_by_id(self.sessions, claims.client_id) is None:
                raise Unauthenticated("The access token's client no longer exists.")
        return Identity(user_id, claims.scopes, claims.client_id, claims.token_id, claims.session_id,
                        claims.trusted_documents_only, claims.expires_at, claims.trusted_manifests)

    async def _external(self, token: str) -> Identity:
        config = self.external.issuer_of(token)
        assert config is not None
        try:
            # Off the event loop: the issuer's keys may have to be fetched from its jwks_uri.
            claims = await anyio.to_thread.run_sync(self.external.verify, token, config)
            user = await local_user(self.sessions, claims)
        except InvalidToken as exc:
            raise Unauthenticated(str(exc)) from None
        if claims.token_id and await self.revocations.is_revoked(claims.token_id, None):
            raise Unauthenticated("The access token has been revoked.")
        return Identity(user.id, effective_scopes(config, claims), claims.client_id, claims.token_id,
                        expires_at=claims.expires_at)
