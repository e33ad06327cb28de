"""JWT access tokens (RFC 9068 profile): issued with our newest key, verified strictly.

Verification pins the algorithm, requires `kid`, `iss`, `aud`, `exp`, `iat` and `sub`, and honours
`nbf`; anything else about a token is a reason to refuse it, never to guess.

A client presents the same access token with every request for up to 15 minutes, and verifying it
(pyjwt's parsing twice and an ES256 signature check) costs ~230 µs of CPU per request on the bench
machine, more than the rest of a `{ __typename }` request. So the claims of tokens that verified are
kept, by the exact token text, in a bounded LRU: a hit still checks expiry and that the signing key is
still in use, and the caller still checks revocation on every request (auth/authenticate.py).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt
from cachetools import LRUCache

from auth.keys import ALGORITHM, KeyStore

LEEWAY_SECONDS = 30
# Private claim: the token's client may run only trusted (persisted) documents. Carried in the token,
# so no request needs to look the client up; a changed flag applies from the next token on.
TRUSTED_DOCUMENTS_ONLY = "trusted_documents_only"
# With it: the manifests (file names) whose documents that client ships; nothing else may run.
TRUSTED_MANIFESTS = "trusted_manifests"
# Verified tokens remembered per process; a token is ~1 KB with its claims.
VERIFIED_TOKENS = 10_000


class InvalidToken(Exception):
    """The token cannot be trusted; the message is safe to show to the caller."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    subject: str
    scopes: frozenset[str]
    client_id: str | None
    token_id: str
    expires_at: int
    raw: dict[str, Any]

    @property
    def session_id(self) -> str | None:
        """The grant (token family) this token was issued under; absent for client-credentials tokens."""
        sid = self.raw.get("sid")
        return sid if isinstance(sid, str) else None

    @property
    def trusted_documents_only(self) -> bool:
        return self.raw.get(TRUSTED_DOCUMENTS_ONLY) is True

    @property
    def trusted_manifests(self) -> frozenset[str]:
        """The manifests a trusted-documents-only token may run documents of (none when unnamed)."""
        names = self.raw.get(TRUSTED_MANIFESTS)
        return frozenset(n for n in names if isinstance(n, str)) if isinstance(names, list) else frozenset()


class TokenService:
    def __init__(
        self, keys: KeyStore, *, issuer: str, audience: str, ttl_seconds: int, id_token_keys: KeyStore | None = None
    ) -> None:
        self.keys = keys
        # RS256 keys for the ID tokens of clients registered for RS256; never used for access tokens.
        self.id_token_keys = id_token_keys
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        self._verified: LRUCache[str, tuple[AccessClaims, str]] = LRUCache(maxsize=VERIFIED_TOKENS)

    def issue_access_token(
        self,
        subject: str,
        scopes: Iterable[str],
        *,
        client_id: str | None = None,
        ttl_seconds: int | None = None,
        audience: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            **(extra or {}),
            "iss": self.issuer,
            "sub": subject,
            "aud": audience or self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + (ttl_seconds or self.ttl_seconds),
            "jti": secrets.token_urlsafe(16),
            "scope": " ".join(sorted(set(scopes))),
        }
        if client_id is not None:
            claims["client_id"] = client_id
        key = self.keys.signing_key
        return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": "at+jwt"})

    def jwks(self) -> dict[str, Any]:
        """Every public key that signs anything here (access tokens and ID tokens)."""
        keys = self.keys.jwks()["keys"]
        if self.id_token_keys is not None:
            keys = [*keys, *self.id_token_keys.jwks()["keys"]]
        return {"keys": keys}

    def verify(self, token: str, *, audiences: Iterable[str] | None = None) -> AccessClaims:
        """The token's claims if we issued it for `audiences` (default: our own API) and it is still valid."""
        if audiences is not None:
            return self._verify(token, audiences)[0]
        known = self._verified.get(token)
        if known is not None:
            claims, kid = known
            if time.time() >= claims.expires_at + LEEWAY_SECONDS:  # what pyjwt's `exp` check would say now
                del self._verified[token]
                raise InvalidToken("The access token has expired.")
            if self.keys.knows(kid):
                return claims
        claims, kid = self._verify(token, None)
        self._verified[token] = (claims, kid)
        return claims

    def _verify(self, token: str, audiences: Iterable[str] | None) -> tuple[AccessClaims, str]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("The access token is malformed.") from None
        # RFC 9068 §4: refuse other JWTs we sign (ID tokens, say) offered as access tokens.
        if str(header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
            raise InvalidToken("This is not an access token.")
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("The access token is signed with an unexpected algorithm.")
        kid = str(header.get("kid", ""))
        public_key = self.keys.public_key(kid)
        if public_key is None:
            raise InvalidToken("The access token was signed by an unknown key.")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                public_key,
                algorithms=[ALGORITHM],
                audience=list(audiences) if audiences is not None else self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("The access token has expired.") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("The access token is not valid yet.") from None
        except jwt.PyJWTError:
            raise InvalidToken("The access token is invalid.") from None
        return AccessClaims(
            subject=str(claims["sub"]),
            scopes=frozenset(str(claims.get("scope", "")).split()),
            client_id=claims.get("client_id"),
            token_id=str(claims["jti"]),
            expires_at=int(claims["exp"]),
            raw=claims,
        ), kid
