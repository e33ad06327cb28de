"""RFC 8693 token exchange as an authlib grant (authlib ships the RFC's name, not a grant).

Two subject tokens are accepted:

- a token from a trusted external issuer: exchanged for a Tandem access token of the local user
  (created on first sight), with at most the issuer's configured scopes;
- a Tandem access token: exchanged for a narrower one, with fewer scopes and/or a single downstream
  audience, never outliving the original and staying in its session (revoking that ends both). It
  keeps every restriction of the original: trusted-documents-only and its manifests (narrowed further
  by the exchanging client's own), scopes, audience, session. A client exchanges only tokens issued
  to itself, unless the subject token names it (`may_act`, or its client id in `aud`, RFC 8693 §4.4)
  or it is registered for delegation (`--may-delegate`); the new token then says who acts (`act`).

No refresh token is issued; `actor_token` is not offered.
"""

from __future__ import annotations

import time
from typing import Any

from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    UnauthorizedClientError,
    grants,
)

from auth.external import effective_scopes, local_user
from auth.oauth.grants import PUBLIC_OR_SECRET
from auth.oauth.models import TOKEN_EXCHANGE, Client
from auth.oauth.server import TandemAuthorizationServer, trusted_documents_claims
from auth.tokens import TRUSTED_DOCUMENTS_ONLY, TRUSTED_MANIFESTS, AccessClaims, InvalidToken

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
SUBJECT_TOKEN_TYPES = (ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE, ID_TOKEN_TYPE)


class InvalidTargetError(OAuth2Error):  # type: ignore[misc]
    error = "invalid_target"  # RFC 8693 §2.2.2


class TokenExchangeGrant(grants.BaseGrant, grants.TokenEndpointMixin):  # type: ignore[misc]
    GRANT_TYPE = TOKEN_EXCHANGE
    TOKEN_ENDPOINT_AUTH_METHODS = PUBLIC_OR_SECRET

    @property
    def _server(self) -> TandemAuthorizationServer:
        server: TandemAuthorizationServer = self.server
        return server

    def validate_token_request(self) -> None:
        client: Client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(f"The client is not authorized to use 'grant_type={self.GRANT_TYPE}'")
        form = self.request.form
        if not form.get("subject_token"):
            raise InvalidRequestError("Missing 'subject_token'.")
        if form.get("subject_token_type") not in SUBJECT_TOKEN_TYPES:
            raise InvalidRequestError("'subject_token_type' must name an access token, a JWT or an ID token.")
        if form.get("actor_token"):
            raise InvalidRequestError("Delegation with 'actor_token' is not supported.")
        if form.get("requested_token_type", ACCESS_TOKEN_TYPE) != ACCESS_TOKEN_TYPE:
            raise InvalidRequestError("Only access tokens can be requested.")
        self.validate_requested_scope()
        self.request.client = client

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        server = self._server
        client: Client = self.request.client
        subject_token = self.request.form["subject_token"]
        if server.external.issuer_of(subject_token) is not None:
            subject, allowed, audience, extra, ttl = self._from_external(subject_token)
        else:
            subject, allowed, audience, extra, ttl = self._from_tandem(subject_token, client)
        requested = set((self.request.payload.scope or "").split())
        if requested - allowed:
            raise InvalidScopeError("The requested scope exceeds what the subject token allows.")
        granted = (requested or allowed) & client.allowed_scopes()
        extra = _narrowed(extra, trusted_documents_claims(client))
        access_token = server.tokens.issue_access_token(
            subject, granted, client_id=client.client_id, audience=audience, ttl_seconds=ttl, extra=extra,
        )
        body = {
            "access_token": access_token,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": ttl,
            "scope": " ".join(sorted(granted)),
        }
        return 200, body, self.TOKEN_RESPONSE_HEADER

    def _audience(self, allowed: set[str], default: str) -> str:
        requested = self.request.form.get("audience") or self.request.form.get("resource")
        if requested is None:
            return default
        if requested not in allowed:
            raise InvalidTargetError(description="Tokens cannot be issued for this audience.")
        return str(requested)

    def _from_external(self, token: str) -> tuple[str, set[str], str, dict[str, Any], int]:
        server = self._server
        config = server.external.issuer_of(token)
        assert config is not None
        try:
            claims = server.external.verify(token, config)
            user = server.run(local_user, server.sessions, claims)
        except InvalidToken as exc:
            raise InvalidRequestError(f"The subject token is not acceptable: {exc}") from None
        audience = self._audience({server.config.audience}, server.config.audience)
        return str(user.id), set(effective_scopes(config, claims)), audience, {}, server.config.access_token_ttl_seconds

    def _from_tandem(self, token: str, client: Client) -> tuple[str, set[str], str, dict[str, Any], int]:
        server = self._server
        audiences = (server.config.audience, *server.config.exchange_audiences)
        try:
            claims: AccessClaims = server.tokens.verify(token, audiences=audiences)
        except InvalidToken as exc:
            raise InvalidRequestError(f"The subject token is not acceptable: {exc}") from None
        if server.run(server.revocations.is_revoked, claims.token_id, claims.session_id):
            raise InvalidRequestError("The subject token has been revoked.")
        if not _may_exchange(client, claims):
            raise InvalidGrantError("The subject token was issued to another client, and does not name this one.")
        original = str(claims.raw["aud"]) if isinstance(claims.raw["aud"], str) else ""
        # Narrower only: the whole API may become one downstream service, never the other way.
        allowed = {original}
        if original == server.config.audience:
            allowed |= set(server.config.exchange_audiences)
        audience = self._audience(allowed, original)
        ttl = min(server.config.access_token_ttl_seconds, claims.expires_at - int(time.time()))
        extra: dict[str, Any] = {"sid": claims.session_id} if claims.session_id else {}
        if claims.trusted_documents_only:
            extra |= {TRUSTED_DOCUMENTS_ONLY: True, TRUSTED_MANIFESTS: sorted(claims.trusted_manifests)}
        if claims.client_id != client.client_id:
            extra["act"] = {"sub": client.client_id}  # RFC 8693 §4.1: who acts for the subject
        return claims.subject, set(claims.scopes), audience, extra, max(1, ttl)


def _may_exchange(client: Client, claims: AccessClaims) -> bool:
    """Its own token; a token naming it as a party that may act (`may_act.client_id` or `.sub`) or as
    an audience; or any token when the client is registered for delegation."""
    if claims.client_id == client.client_id or client.row.may_delegate:
        return True
    may_act = claims.raw.get("may_act")
    if isinstance(may_act, dict) and client.client_id in (may_act.get("client_id"), may_act.get("sub")):
        return True
    aud = claims.raw.get("aud")
    return client.client_id == aud or (isinstance(aud, list) and client.client_id in aud)


def _narrowed(subject: dict[str, Any], client: dict[str, Any]) -> dict[str, Any]:
    """The subject token's claims with the exchanging client's trusted-documents restriction added:
    restricted by either means restricted, to the manifests both allow."""
    if not client:
        return subject
    if not subject.get(TRUSTED_DOCUMENTS_ONLY):
        return {**subject, **client}
    both = sorted(set(subject.get(TRUSTED_MANIFESTS, [])) & set(client[TRUSTED_MANIFESTS]))
    return {**subject, TRUSTED_DOCUMENTS_ONLY: True, TRUSTED_MANIFESTS: both}
