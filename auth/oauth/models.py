"""Our rows seen through authlib's model interfaces (`ClientMixin`, `AuthorizationCodeMixin`, `TokenMixin`)."""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin
from authlib.oidc.core import AuthorizationCodeMixin

from auth.oauth.data import digest, expired
from db.models import User
from db.oauth import OAuthAuthorizationCode, OAuthClient, OAuthRefreshToken, as_list

AUTHORIZATION_CODE = "authorization_code"
REFRESH_TOKEN = "refresh_token"
CLIENT_CREDENTIALS = "client_credentials"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
GRANT_TYPES = (AUTHORIZATION_CODE, REFRESH_TOKEN, CLIENT_CREDENTIALS, TOKEN_EXCHANGE)

SECRET_METHODS = ("client_secret_basic", "client_secret_post")


class Client(ClientMixin):  # type: ignore[misc]
    def __init__(self, row: OAuthClient) -> None:
        self.row = row
        self.client_id = row.client_id
        self.client_metadata: dict[str, Any] = {}

    @property
    def id_token_signed_response_alg(self) -> str:
        """ES256 (the access tokens' keys) unless the client registered for RS256."""
        return self.row.id_token_alg or "ES256"

    @property
    def confidential(self) -> bool:
        return self.row.secret_hash is not None

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # every authorization request names its redirect_uri, matched exactly

    def allowed_scopes(self) -> set[str]:
        return set(self.row.scope.split())

    def get_allowed_scope(self, scope: str | None) -> str:
        # No scope asked for: everything the client is registered for (RFC 6749 §3.3's default).
        allowed = self.allowed_scopes()
        wanted = allowed if not scope else set(scope.split()) & allowed
        return " ".join(sorted(wanted))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in as_list(self.row.redirect_uris)

    def check_client_secret(self, client_secret: str) -> bool:
        stored = self.row.secret_hash
        return stored is not None and hmac.compare_digest(stored, digest(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in SECRET_METHODS if self.confidential else method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and AUTHORIZATION_CODE in as_list(self.row.grant_types)

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == CLIENT_CREDENTIALS and not self.confidential:
            return False  # RFC 6749 §4.4: confidential clients only
        return grant_type in as_list(self.row.grant_types)


@dataclass(frozen=True)
class GrantUser:
    """The resource owner as the grants see it: the user, and the session its tokens belong to."""

    user: User
    session_id: str
    auth_time: int | None = None

    def get_user_id(self) -> int:
        return self.user.id


class AuthorizationCode(AuthorizationCodeMixin):  # type: ignore[misc]
    def __init__(self, row: OAuthAuthorizationCode) -> None:
        self.row = row
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope

    def get_nonce(self) -> str | None:
        return self.row.nonce

    def get_auth_time(self) -> int:
        return self.row.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> list[str]:
        return ["pwd"]

    def is_expired(self) -> bool:
        return expired(self.row.expires_at)


class RefreshToken(TokenMixin):  # type: ignore[misc]
    def __init__(self, row: OAuthRefreshToken, *, session_revoked: bool = False) -> None:
        self.row = row
        self.session_revoked = session_revoked

    def check_client(self, client: Client) -> bool:
        return self.row.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.row.scope

    def get_expires_in(self) -> int:
        return max(0, int(self.row.expires_at.timestamp() - time.time()))

    def is_expired(self) -> bool:
        return expired(self.row.expires_at)

    def is_revoked(self) -> bool:
        return self.row.used_at is not None or self.session_revoked


@dataclass
class AccessToken(TokenMixin):  # type: ignore[misc]
    """A verified JWT access token (for revocation and introspection)."""

    claims: dict[str, Any]
    revoked: bool

    def check_client(self, client: Client) -> bool:
        return self.claims.get("client_id") == client.get_client_id()

    def get_scope(self) -> str:
        return str(self.claims.get("scope", ""))

    def get_expires_in(self) -> int:
        return max(0, int(self.claims["exp"]) - int(time.time()))

    def is_expired(self) -> bool:
        return int(self.claims["exp"]) <= int(time.time())

    def is_revoked(self) -> bool:
        return self.revoked
