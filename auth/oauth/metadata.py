"""RFC 8414 authorization server metadata and its OpenID Connect Discovery twin, as authlib's models."""

from __future__ import annotations

from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata

from auth import scopes
from auth.oauth.models import GRANT_TYPES

AUTHORIZE = "/oauth/authorize"
TOKEN = "/oauth/token"
REVOKE = "/oauth/revoke"
INTROSPECT = "/oauth/introspect"
USERINFO = "/oauth/userinfo"
JWKS = "/.well-known/jwks.json"

SECRET_METHODS = ["client_secret_basic", "client_secret_post"]
ID_TOKEN_ALGORITHMS = ["ES256", "RS256"]  # RS256: required of every OpenID provider (Discovery §3)


def authorization_server_metadata(issuer: str) -> AuthorizationServerMetadata:
    base = issuer.rstrip("/")
    return AuthorizationServerMetadata({
        "issuer": issuer,
        "authorization_endpoint": base + AUTHORIZE,
        "token_endpoint": base + TOKEN,
        "jwks_uri": base + JWKS,
        "scopes_supported": sorted(scopes.ALL),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(GRANT_TYPES),
        "token_endpoint_auth_methods_supported": [*SECRET_METHODS, "none"],
        "revocation_endpoint": base + REVOKE,
        "revocation_endpoint_auth_methods_supported": [*SECRET_METHODS, "none"],
        "introspection_endpoint": base + INTROSPECT,
        "introspection_endpoint_auth_methods_supported": SECRET_METHODS,
        "code_challenge_methods_supported": ["S256"],
        # Here too, not only in OpenID Connect Discovery: clients using RFC 8414 discovery with `openid`
        # check the ID token's algorithm against it.
        "id_token_signing_alg_values_supported": ID_TOKEN_ALGORITHMS,
        "authorization_response_iss_parameter_supported": True,  # RFC 9207
    })


def openid_configuration(issuer: str) -> OpenIDProviderMetadata:
    return OpenIDProviderMetadata({
        **authorization_server_metadata(issuer),
        "userinfo_endpoint": issuer.rstrip("/") + USERINFO,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ID_TOKEN_ALGORITHMS,
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "name", "email",
                             "email_verified", "updated_at"],
    })
