"""The description of `GET /.well-known/jwks.json` (served by `app.main` from `auth.keys`).

Declared here, with the other REST operations, so `/openapi.json` covers it; the OAuth server's
metadata endpoints join it the same way.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from rest.openapi import Operation, Reply


class Jwk(BaseModel):
    model_config = ConfigDict(extra="allow")

    kty: str
    kid: str
    use: str | None = None
    alg: str | None = None
    crv: str | None = None
    x: str | None = None
    y: str | None = None


class Jwks(BaseModel):
    keys: list[Jwk]


OPERATIONS = [
    Operation("GET", "/.well-known/jwks.json", "jwks", "The public keys that verify our access tokens",
              tags=("oauth",), description="Old keys stay listed until the tokens they signed have expired.",
              responses=(Reply(200, "A JSON Web Key Set (RFC 7517).", Jwks),)),
]
