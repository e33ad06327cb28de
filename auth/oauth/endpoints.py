"""RFC 7009 revocation and RFC 7662 introspection, as authlib endpoints over our two kinds of token.

Access tokens are JWTs: looking one up means verifying it, and revoking it puts its `jti` on the
revocation list. Refresh tokens are rows: revoking one ends its whole session, access tokens included
(RFC 7009 §2.1).
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _IntrospectionEndpoint

from auth.oauth import data
from auth.oauth.grants import ALL_SECRET_METHODS, PUBLIC_OR_SECRET
from auth.oauth.models import AccessToken, Client, RefreshToken
from auth.oauth.server import TandemAuthorizationServer
from auth.tokens import InvalidToken


def _find_token(server: TandemAuthorizationServer, value: str, hint: str | None) -> AccessToken | RefreshToken | None:
    # The hint only orders the look-ups (RFC 7009 §2.1): a wrong hint still finds the token.
    lookups = [_refresh_token, _access_token] if hint == "refresh_token" else [_access_token, _refresh_token]
    for lookup in lookups:
        token = lookup(server, value)
        if token is not None:
            return token
    return None


def _access_token(server: TandemAuthorizationServer, value: str) -> AccessToken | None:
    if value.count(".") != 2:
        return None
    try:
        claims = server.tokens.verify(value, audiences=(server.config.audience, *server.config.exchange_audiences))
    except InvalidToken:
        return None  # expired, forged or not ours: inactive either way
    revoked = server.run(server.revocations.is_revoked, claims.token_id, claims.session_id)
    return AccessToken(claims.raw, revoked)


def _refresh_token(server: TandemAuthorizationServer, value: str) -> RefreshToken | None:
    row = server.run(data.refresh_token_by_value, server.sessions, value)
    if row is None:
        return None
    token = RefreshToken(row)
    token.session_revoked = not server.run(data.session_active, server.sessions, row.session_id)
    return token


class RevocationEndpoint(_RevocationEndpoint):  # type: ignore[misc]
    # Public clients revoke their own tokens too (RFC 7009 §5), identified by client_id alone.
    CLIENT_AUTH_METHODS = PUBLIC_OR_SECRET

    def query_token(self, token_string: str, token_type_hint: str | None) -> AccessToken | RefreshToken | None:
        return _find_token(self.server, token_string, token_type_hint)

    def revoke_token(self, token: AccessToken | RefreshToken, request: OAuth2Request) -> None:
        server: TandemAuthorizationServer = self.server
        if isinstance(token, AccessToken):
            server.run(server.revocations.revoke_token, str(token.claims["jti"]), int(token.claims["exp"]))
        else:
            server.run(server.revoke_session, token.row.session_id)


class IntrospectionEndpoint(_IntrospectionEndpoint):  # type: ignore[misc]
    """Only confidential clients registered as resource servers (`tandem client create
    --resource-server AUDIENCE`) learn anything here, and only of access tokens meant for them (their
    audience is in `aud`) and of refresh tokens issued to themselves. Every other token reads as
    `{"active": false}`, exactly as a token that does not exist (RFC 7662 §2.2)."""

    CLIENT_AUTH_METHODS = ALL_SECRET_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> AccessToken | RefreshToken | None:
        return _find_token(self.server, token_string, token_type_hint)

    def check_permission(self, token: AccessToken | RefreshToken, client: Client, request: OAuth2Request) -> bool:
        audience = client.row.resource_audience
        if not client.confidential or audience is None:
            return False
        if isinstance(token, RefreshToken):
            return token.row.client_id == client.client_id
        aud = token.claims.get("aud")
        return audience == aud or (isinstance(aud, list) and audience in aud)

    def introspect_token(self, token: AccessToken | RefreshToken) -> dict[str, Any]:
        server: TandemAuthorizationServer = self.server
        if isinstance(token, AccessToken):
            claims = token.claims
            return {
                "active": True, "token_type": "Bearer", "scope": token.get_scope(),
                "client_id": claims.get("client_id"),
                "sub": claims["sub"], "aud": claims["aud"], "iss": claims["iss"], "exp": claims["exp"],
                "iat": claims["iat"], "jti": claims["jti"],
            }
        row = token.row
        return {
            "active": True, "token_type": "refresh_token", "scope": row.scope, "client_id": row.client_id,
            "sub": str(row.user_id), "iss": server.config.issuer, "exp": int(row.expires_at.timestamp()),
            "iat": int(row.issued_at.timestamp()),
        }
