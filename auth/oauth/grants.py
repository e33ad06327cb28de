"""authlib's grants, configured: authorization code with PKCE S256 only, rotating refresh tokens,
client credentials, and OpenID Connect ID tokens on the code flow.

Single use is enforced with one conditional UPDATE (`consume_code`, `consume_refresh_token`), so of
two requests racing with the same code or refresh token exactly one wins; the other is treated as
what it is, a replay, and revokes the session (RFC 6749 §4.1.2, RFC 9700 §4.14.2).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError, OAuth2Request, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core import grants as oidc_grants
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import ECKey, RSAKey

from auth.keys import RS256, SigningKey
from auth.oauth import data
from auth.oauth.models import AuthorizationCode, Client, GrantUser, RefreshToken
from auth.oauth.server import TandemAuthorizationServer
from db.models import User, UserRole, utcnow
from db.oauth import OAuthAuthorizationCode

ALL_SECRET_METHODS = ["client_secret_basic", "client_secret_post"]
PUBLIC_OR_SECRET = [*ALL_SECRET_METHODS, "none"]


class S256CodeChallenge(CodeChallenge):  # type: ignore[misc]
    """PKCE for every client, S256 only: `plain` and a missing challenge are refused (RFC 9700 §2.1.1)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def __init__(self) -> None:
        super().__init__(required=True)

    def validate_code_challenge(self, grant: grants.BaseGrant, redirect_uri: str) -> None:
        payload = grant.request.payload.data
        if not payload.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send 'code_challenge' and 'code_challenge_method=S256'.")
        if payload.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Only 'code_challenge_method=S256' is supported.")
        super().validate_code_challenge(grant, redirect_uri)


def _server(grant: grants.BaseGrant) -> TandemAuthorizationServer:
    server: TandemAuthorizationServer = grant.server
    return server


def granted_scope(requested: str, user: User) -> str:
    """What a user can grant: `admin` only when they are an admin."""
    wanted = set(requested.split())
    if user.role != UserRole.ADMIN.value:
        wanted.discard("admin")
    return " ".join(sorted(wanted))


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = PUBLIC_OR_SECRET

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        server = _server(self)
        user: GrantUser = request.user
        payload = request.payload.data
        row = OAuthAuthorizationCode(
            client_id=request.client.client_id, user_id=user.user.id, session_id=user.session_id,
            redirect_uri=request.payload.redirect_uri, scope=granted_scope(request.scope or "", user.user),
            nonce=payload.get("nonce"), code_challenge=payload["code_challenge"],
            code_challenge_method=payload["code_challenge_method"], auth_time=user.auth_time or int(time.time()),
            expires_at=utcnow() + timedelta(seconds=server.config.authorization_code_ttl_seconds),
        )
        server.run(data.save_code, server.sessions, code, row)

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        server = _server(self)
        row = server.run(data.code_by_value, server.sessions, code, client.client_id)
        if row is None:
            return None
        if row.used_at is not None:
            server.run(server.revoke_session, row.session_id)  # a replayed code revokes what it issued
            return None
        authorization_code = AuthorizationCode(row)
        return None if authorization_code.is_expired() else authorization_code

    def authenticate_user(self, authorization_code: AuthorizationCode) -> GrantUser | None:
        server = _server(self)
        row = authorization_code.row
        if not server.run(data.consume_code, server.sessions, row.code_hash):
            server.run(server.revoke_session, row.session_id)  # lost the race to another use of the code
            return None
        user = server.run(data.user_by_id, server.sessions, row.user_id)
        if user is None or not server.run(data.session_active, server.sessions, row.session_id):
            return None
        return GrantUser(user, row.session_id, row.auth_time)

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        pass  # consumed in authenticate_user, before any token exists; the used row detects replays


class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = PUBLIC_OR_SECRET
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: every refresh returns a new refresh token

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        server = _server(self)
        row = server.run(data.refresh_token_by_value, server.sessions, refresh_token)
        if row is None:
            return None
        token = RefreshToken(row)
        if token.is_revoked():
            server.run(server.revoke_session, row.session_id)  # reuse detection: the family ends
            return None
        if token.is_expired() or not server.run(data.session_active, server.sessions, row.session_id):
            return None
        return token

    def authenticate_user(self, refresh_token: RefreshToken) -> GrantUser | None:
        server = _server(self)
        user = server.run(data.user_by_id, server.sessions, refresh_token.row.user_id)
        return GrantUser(user, refresh_token.row.session_id) if user else None

    def issue_token(self, user: GrantUser, refresh_token: RefreshToken) -> dict[str, Any]:
        server = _server(self)
        if not server.run(data.consume_refresh_token, server.sessions, refresh_token.row.token_hash):
            server.run(server.revoke_session, refresh_token.row.session_id)
            raise InvalidGrantError("The refresh token was already used.")
        token: dict[str, Any] = super().issue_token(user, refresh_token)
        return token

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        pass  # consumed in issue_token, before its successor exists


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_SECRET_METHODS


def user_info(user: User, scope: str) -> UserInfo:
    claims = UserInfo(sub=str(user.id), name=user.name, email=user.email, email_verified=False,
                      updated_at=int(user.updated_at.timestamp()))
    return claims.filter(scope)


class OpenIDCode(oidc_grants.OpenIDCode):  # type: ignore[misc]
    """`openid` in the scope adds an ID token, signed with our current ES256 key, or RS256 key for
    clients registered for RS256 (`tandem client create --id-token-alg RS256`)."""

    def __init__(self, server: TandemAuthorizationServer) -> None:
        super().__init__(require_nonce=False)
        self.server = server

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return self.server.run(data.nonce_used, self.server.sessions, request.payload.client_id, nonce)

    def _signing_key(self, client: Client) -> SigningKey:
        tokens = self.server.tokens
        if client.id_token_signed_response_alg == RS256 and tokens.id_token_keys is not None:
            return tokens.id_token_keys.signing_key
        return tokens.keys.signing_key

    def resolve_client_private_key(self, client: Client) -> ECKey | RSAKey:
        private_key = self._signing_key(client).private_key
        if isinstance(private_key, rsa.RSAPrivateKey):
            return RSAKey.import_key(private_key)
        return ECKey.import_key(private_key)

    def get_client_algorithm(self, client: Client) -> str:
        return self._signing_key(client).algorithm

    def get_encode_header(self, client: Client) -> dict[str, str]:
        # typ JWT, not at+jwt: an ID token offered as an access token is refused (RFC 9068 §4).
        key = self._signing_key(client)
        return {"alg": key.algorithm, "kid": key.kid, "typ": "JWT"}

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        now = int(time.time())
        return {"iss": self.server.config.issuer, "aud": [client.client_id],
                "exp": now + self.server.config.access_token_ttl_seconds}

    def generate_user_info(self, user: GrantUser, scope: str) -> UserInfo:
        return user_info(user.user, scope)
