"""Read the bearer token out of an `Authorization` header."""

from __future__ import annotations

from resolvers.errors import Unauthenticated


def bearer_token(authorization: str | None) -> str | None:
    """The token, `None` when there is no header, `Unauthenticated` for any other scheme."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Send the access token as `Authorization: Bearer <token>`.")
    return token.strip()
