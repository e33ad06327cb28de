"""Tokens from trusted external issuers (Keycloak, Auth0, …): verified against the issuer's JWKS,
their users mapped to local users (created on first sight).

Each issuer is configured with its `issuer` URL, the `audience` its tokens carry for Tandem, and its
public keys: inline (`jwks`), a file (`jwks_file`), or fetched and cached from `jwks_uri`. Only
asymmetric algorithms are accepted, so a public key can never be used as an HMAC secret.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from auth.tokens import LEEWAY_SECONDS, InvalidToken
from db.engine import Sessions
from db.models import User
from db.oauth import ExternalIdentity
from resolvers.errors import BadUserInput
from resolvers.users import create_user, user_by_email

ASYMMETRIC = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}


class TrustedIssuer(BaseModel):
    issuer: str
    audience: str = "tandem"
    jwks: dict[str, Any] | None = None
    jwks_file: Path | None = None
    jwks_uri: str | None = None
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    # The most this issuer's tokens may do here; a token's own `scope`/`scp` narrows it further.
    scopes: list[str] = Field(default_factory=lambda: ["profile", "tasks:read", "tasks:write",
                                                         "documents:read", "documents:write"])
    # Also accept this issuer's tokens directly at /graphql (not only through token exchange).
    accept_at_graphql: bool = False

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, algorithms: list[str]) -> list[str]:
        refused = set(algorithms) - ASYMMETRIC
        if refused:
            raise ValueError(f"only asymmetric algorithms are allowed, not {sorted(refused)}")
        return algorithms

    @model_validator(mode="after")
    def _one_key_source(self) -> TrustedIssuer:
        if sum(source is not None for source in (self.jwks, self.jwks_file, self.jwks_uri)) != 1:
            raise ValueError(f"{self.issuer}: give exactly one of jwks, jwks_file, jwks_uri")
        return self


@dataclass(frozen=True)
class ExternalClaims:
    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None
    scopes: frozenset[str]
    token_id: str | None
    expires_at: int
    client_id: str | None


class _Keys:
    def __init__(self, config: TrustedIssuer) -> None:
        self._client = jwt.PyJWKClient(config.jwks_uri, cache_keys=True, lifespan=300) if config.jwks_uri else None
        jwks = config.jwks
        if config.jwks_file is not None:
            jwks = json.loads(config.jwks_file.read_text())
        self._set = jwt.PyJWKSet.from_dict(jwks) if jwks is not None else None

    def key_for(self, token: str, kid: str) -> Any:
        """The verification key; blocking (may fetch the JWKS), so call it off the event loop."""
        try:
            if self._client is not None:
                return self._client.get_signing_key_from_jwt(token).key
            assert self._set is not None
            return self._set[kid].key
        except (KeyError, jwt.PyJWKClientError, jwt.PyJWKSetError):
            raise InvalidToken("The token was signed by a key its issuer does not publish.") from None


class ExternalIssuers:
    def __init__(self, configs: list[TrustedIssuer]) -> None:
        self.configs = {config.issuer: config for config in configs}
        self._keys = {config.issuer: _Keys(config) for config in configs}

    def issuer_of(self, token: str) -> TrustedIssuer | None:
        """The trusted issuer the token claims to come from (unverified: only to choose the keys)."""
        if not self.configs:
            return None  # nothing to choose from: skip parsing the token (pyjwt's parse is ~100 µs)
        try:
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            return None
        return self.configs.get(issuer) if isinstance(issuer, str) else None

    def verify(self, token: str, config: TrustedIssuer) -> ExternalClaims:
        """Verify signature, issuer, audience and lifetime; blocking (see `_Keys.key_for`)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("The token is malformed.") from None
        if header.get("alg") not in config.algorithms:
            raise InvalidToken("The token is signed with an algorithm its issuer is not trusted for.")
        key = self._keys[config.issuer].key_for(token, str(header.get("kid", "")))
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=config.algorithms, audience=config.audience, issuer=config.issuer,
                leeway=LEEWAY_SECONDS, options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("The token has expired.") from None
        except jwt.PyJWTError:
            raise InvalidToken("The token is invalid.") from None
        if any("\x00" in str(claims.get(name, "")) for name in ("sub", "email", "name")):
            raise InvalidToken("The token's claims contain NUL characters.")
        return ExternalClaims(
            issuer=config.issuer,
            subject=str(claims["sub"]),
            email=claims.get("email") if isinstance(claims.get("email"), str) else None,
            email_verified=claims.get("email_verified") is True,
            name=claims.get("name") if isinstance(claims.get("name"), str) else None,
            scopes=_scopes(claims),
            token_id=str(claims["jti"]) if "jti" in claims else None,
            expires_at=int(claims["exp"]),
            client_id=str(claims.get("azp") or claims.get("client_id") or "") or None,
        )


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    value = claims.get("scope", claims.get("scp", ""))
    return frozenset(value.split() if isinstance(value, str) else map(str, value) if isinstance(value, list) else ())


def effective_scopes(config: TrustedIssuer, claims: ExternalClaims) -> frozenset[str]:
    """The issuer's allowance, narrowed by the token's own scopes when it names any of ours."""
    allowed = frozenset(config.scopes)
    named = claims.scopes & allowed
    return named if named else allowed


async def local_user(sessions: Sessions, claims: ExternalClaims) -> User:
    """The local user for an external identity, created on first sight.

    An existing local account with the same email is linked only when the issuer says the email is
    verified: otherwise anyone who can register that address at the issuer would take the account over.
    """
    async with sessions() as session:
        user = await session.scalar(select(User).join(ExternalIdentity, ExternalIdentity.user_id == User.id).where(
            ExternalIdentity.issuer == claims.issuer, ExternalIdentity.subject == claims.subject))
    if user is not None:
        return user
    if not claims.email:
        raise InvalidToken("The token has no `email` claim to create a Tandem account from.")
    user = await user_by_email(sessions, claims.email)
    if user is not None and not claims.email_verified:
        raise InvalidToken("The token's email belongs to a Tandem account, and its issuer has not verified it.")
    if user is None:
        name = claims.name or claims.email.partition("@")[0]
        try:
            user = await create_user(sessions, email=claims.email, name=name, password_hash=None)
        except BadUserInput as exc:
            raise InvalidToken(f"Cannot create a Tandem account from this token: {exc.message}") from None
    try:
        async with sessions.begin() as session:
            session.add(ExternalIdentity(issuer=claims.issuer, subject=claims.subject, user_id=user.id))
    except IntegrityError:
        pass  # a concurrent first sight linked it already; both requests map to the same user
    return user
