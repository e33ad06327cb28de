"""`authorization_server()`: authlib's server with our grants, endpoints and extensions registered."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.authenticate_client import authenticate_client_secret_basic
from authlib.oauth2.rfc9207 import IssuerParameter

from auth.external import ExternalIssuers
from auth.oauth.endpoints import IntrospectionEndpoint, RevocationEndpoint
from auth.oauth.exchange import TokenExchangeGrant
from auth.oauth.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    OpenIDCode,
    RefreshTokenGrant,
    S256CodeChallenge,
)
from auth.oauth.server import ServerConfig, TandemAuthorizationServer
from auth.revocation import RevocationList
from auth.tokens import TokenService
from db.engine import Sessions


class _IssuerParameter(IssuerParameter):  # type: ignore[misc]
    """RFC 9207: every authorization response names its issuer, against mix-up attacks."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer

    def get_issuer(self) -> str:
        return self.issuer


def _client_secret_basic(query_client: Any, request: OAuth2Request) -> Any:
    """authlib's HTTP Basic client authentication, but credentials that are not UTF-8 fail it
    (authlib lets the UnicodeDecodeError escape, which would be a 500)."""
    try:
        return authenticate_client_secret_basic(query_client, request)
    except UnicodeDecodeError:
        return None


def authorization_server(
    sessions: Sessions, tokens: TokenService, revocations: RevocationList, external: ExternalIssuers,
    config: ServerConfig,
) -> TandemAuthorizationServer:
    server = TandemAuthorizationServer(sessions, tokens, revocations, external, config)
    server.register_client_auth_method("client_secret_basic", _client_secret_basic)
    server.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(), OpenIDCode(server)])
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(TokenExchangeGrant)
    server.register_endpoint(RevocationEndpoint)
    server.register_endpoint(IntrospectionEndpoint)
    server.register_extension(_IssuerParameter(config.issuer))
    return server
