"""The OAuth 2 authorization server's HTTP endpoints (served by auth/oauth/routes.py), described for
`/openapi.json`.

The handlers live in `auth/` (which must not import the REST layer), so their description lives
here. OAuth answers in its own shapes, not the REST error shape: token, revocation and
introspection errors are RFC 6749 §5.2 JSON (`OAuthError`), userinfo's are RFC 6750 challenges, and
the authorization endpoint answers browsers with HTML pages and redirects. Every protocol parameter
is printable ASCII (RFC 6749 Appendix A); anything else is refused with `invalid_request`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from rest.openapi import Body, Operation, Param, Reply

FORM = "application/x-www-form-urlencoded"
HTML = "text/html"
TAGS = ("oauth",)
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"

Text = Annotated[str, Field(pattern=r"^[\x20-\x7e]*$")]  # RFC 6749 Appendix A: VSCHAR
Verifier = Annotated[str, Field(min_length=43, max_length=128, pattern=r"^[A-Za-z0-9._~-]+$")]  # RFC 7636 §4.1
TokenTypeHint = Literal["access_token", "refresh_token"]


class _ClientAuth(BaseModel):
    client_id: Text | None = Field(None, description="Public clients; confidential ones may use HTTP Basic instead.")
    client_secret: Text | None = Field(None, description="client_secret_post (or send it with HTTP Basic).")


class AuthorizationCodeGrant(_ClientAuth):
    grant_type: Literal["authorization_code"]
    code: Text
    redirect_uri: Text = Field(description="Exactly as sent to /oauth/authorize.")
    code_verifier: Verifier = Field(description="PKCE (RFC 7636): the secret behind the S256 code_challenge.")


class RefreshTokenGrant(_ClientAuth):
    grant_type: Literal["refresh_token"]
    refresh_token: Text = Field(description="Single use: the answer carries the next one (rotation).")
    scope: Text | None = Field(None, description="Narrower than the original grant, or omitted.")


class ClientCredentialsGrant(_ClientAuth):
    grant_type: Literal["client_credentials"]
    scope: Text | None = None


class TokenExchangeGrant(_ClientAuth):
    """RFC 8693: a narrower Tandem token, or a trusted issuer's token traded for one of ours."""

    grant_type: Literal["urn:ietf:params:oauth:grant-type:token-exchange"]
    subject_token: Text
    subject_token_type: Literal["urn:ietf:params:oauth:token-type:access_token", "urn:ietf:params:oauth:token-type:jwt"]
    scope: Text | None = None
    audience: Text | None = Field(None, description="A downstream service in TANDEM_EXCHANGE_AUDIENCES.")
    requested_token_type: Text | None = None


TokenRequest = Annotated[
    AuthorizationCodeGrant | RefreshTokenGrant | ClientCredentialsGrant | TokenExchangeGrant,
    Field(discriminator="grant_type"),
]


class TokenResponse(BaseModel):
    """RFC 6749 §5.1 (and RFC 8693 §2.2.1 for token exchange)."""

    model_config = ConfigDict(extra="allow")
    access_token: str = Field(description="An ES256 JWT (RFC 9068).")
    token_type: str = Field(description="Bearer (case-insensitively).")
    expires_in: int
    scope: str | None = None
    refresh_token: str | None = None
    id_token: str | None = Field(None, description="With the openid scope.")
    issued_token_type: str | None = Field(None, description="Token exchange only.")


class OAuthError(BaseModel):
    """RFC 6749 §5.2."""

    model_config = ConfigDict(extra="allow")
    error: str = Field(description="invalid_request, invalid_client, invalid_grant, unauthorized_client, "
                                   "unsupported_grant_type, invalid_scope, invalid_target, …")
    error_description: str | None = None
    error_uri: str | None = None


class RevocationRequest(_ClientAuth):
    token: Text
    token_type_hint: TokenTypeHint | None = None


class IntrospectionRequest(_ClientAuth):
    """Confidential clients only (resource servers)."""

    token: Text
    token_type_hint: TokenTypeHint | None = None


class Introspection(BaseModel):
    """RFC 7662 §2.2: `active` false, and nothing else, for a token that is not (or no longer) good."""

    model_config = ConfigDict(extra="allow")
    active: bool
    token_type: str | None = None
    scope: str | None = None
    client_id: str | None = None
    sub: str | None = None
    aud: str | list[str] | None = None
    iss: str | None = None
    exp: int | None = None
    iat: int | None = None
    jti: str | None = None


class UserInfoClaims(BaseModel):
    """OpenID Connect Core §5.3.2: the claims the token's scopes allow."""

    model_config = ConfigDict(extra="allow")
    sub: str
    name: str | None = None
    email: str | None = None
    email_verified: bool | None = None
    updated_at: int | None = None


class BearerError(BaseModel):
    """RFC 6750 §3.1; the `WWW-Authenticate` header says more."""

    error: Literal["invalid_token", "insufficient_scope"]


class SignInForm(BaseModel):
    """What the sign-in and consent pages post back (to the same URL, query string included)."""

    csrf_token: Text
    action: Literal["login", "logout", "consent"]
    username: str | None = Field(None, description="The email address (action=login).")
    password: str | None = Field(None, description="action=login")
    decision: Literal["allow", "deny"] | None = Field(None, description="action=consent")


class ServerMetadata(BaseModel):
    """RFC 8414 authorization server metadata (OpenID Connect Discovery adds its own fields)."""

    model_config = ConfigDict(extra="allow")
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    response_types_supported: list[str]
    grant_types_supported: list[str]
    code_challenge_methods_supported: list[str]
    revocation_endpoint: str
    introspection_endpoint: str


class OpenIDConfiguration(ServerMetadata):
    userinfo_endpoint: str
    subject_types_supported: list[str]
    id_token_signing_alg_values_supported: list[str]


def _query(name: str, description: str, *, required: bool = False, **schema: object) -> Param:
    return Param(name, "query", {"type": "string", "pattern": r"^[\x20-\x7e]*$", **schema}, required, description)


AUTHORIZATION_REQUEST = (
    _query("response_type", "Only `code`.", required=True),
    _query("client_id", "A registered client.", required=True),
    _query("redirect_uri", "Exactly one of the client's registered redirect URIs."),
    _query("scope", "Space-separated scopes."),
    _query("state", "Returned as sent."),
    _query("code_challenge", "PKCE (RFC 7636): BASE64URL(SHA-256(code_verifier)).", required=True),
    _query("code_challenge_method", "Only `S256`.", required=True),
    _query("nonce", "OpenID Connect: echoed in the ID token."),
)

_OAUTH_ERRORS = (
    Reply(400, "Refused (RFC 6749 §5.2), e.g. `invalid_request`, `invalid_client`, `invalid_grant`.", OAuthError),
    Reply(401, "Client authentication failed (`invalid_client`, with `WWW-Authenticate`).", OAuthError),
    Reply(413, "The form is larger than 64 KiB (`invalid_request`).", OAuthError),
)
_PAGES = (
    Reply(200, "The sign-in page, or (signed in) the consent page.", {"type": "string"}, HTML),
    Reply(302, "Back to the client's redirect_uri with `code`, `state` and `iss` (RFC 9207), or with `error`."),
    Reply(400, "An error page: the client or redirect URI is unknown, or the request malformed.", {"type": "string"},
          HTML),
    Reply(413, "An error page: the request is too large.", {"type": "string"}, HTML),
)
_USERINFO = (
    Reply(200, "The signed-in user's claims.", UserInfoClaims),
    Reply(401, "No token, or one that is not good (RFC 6750 challenge).", BearerError),
    Reply(403, "The token lacks the openid scope, or is a service token.", BearerError),
)

OPERATIONS: Sequence[Operation] = [
    Operation("GET", "/oauth/authorize", "authorize", "Start the authorization code flow (with PKCE S256)",
              tags=TAGS, parameters=AUTHORIZATION_REQUEST, responses=_PAGES,
              description="For browsers: shows the sign-in form, then the consent form, then redirects back."),
    Operation("POST", "/oauth/authorize", "authorizeForm", "Sign in, sign out, or answer the consent page",
              tags=TAGS, parameters=AUTHORIZATION_REQUEST, body=Body(SignInForm, FORM),
              responses=(*_PAGES, Reply(429, "Too many failed sign-ins (with `Retry-After`).", {"type": "string"},
                                        HTML))),
    Operation("POST", "/oauth/token", "token", "Issue tokens", tags=TAGS, body=Body(TokenRequest, FORM),
              description="Grants: authorization_code, refresh_token (rotating), client_credentials and "
                          f"{TOKEN_EXCHANGE} (RFC 8693). Confidential clients authenticate with HTTP Basic "
                          "or client_secret in the form.",
              responses=(Reply(200, "The tokens (`Cache-Control: no-store`).", TokenResponse), *_OAUTH_ERRORS)),
    Operation("POST", "/oauth/revoke", "revokeToken", "Revoke a token (RFC 7009)", tags=TAGS,
              body=Body(RevocationRequest, FORM),
              description="Revoking a refresh token ends its whole sign-in session, access tokens included.",
              responses=(Reply(200, "Revoked, or it was never valid (RFC 7009 §2.2).", {"type": "object"}),
                         *_OAUTH_ERRORS)),
    Operation("POST", "/oauth/introspect", "introspectToken", "Describe a token (RFC 7662)", tags=TAGS,
              body=Body(IntrospectionRequest, FORM),
              responses=(Reply(200, "Whether the token is active, and what it says.", Introspection),
                         *_OAUTH_ERRORS)),
    Operation("GET", "/oauth/userinfo", "userinfo", "OpenID Connect userinfo", tags=TAGS, security=("bearer",),
              responses=_USERINFO),
    Operation("POST", "/oauth/userinfo", "userinfoPost", "OpenID Connect userinfo", tags=TAGS,
              security=("bearer",), responses=_USERINFO),
    Operation("GET", "/.well-known/oauth-authorization-server", "authorizationServerMetadata",
              "Authorization server metadata (RFC 8414)", tags=TAGS,
              responses=(Reply(200, "The metadata.", ServerMetadata),)),
    Operation("GET", "/.well-known/openid-configuration", "openidConfiguration",
              "OpenID Connect Discovery", tags=TAGS, responses=(Reply(200, "The metadata.", OpenIDConfiguration),)),
]
