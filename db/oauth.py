"""Tables of the OAuth 2 authorization server: clients, sign-in sessions, codes, refresh tokens, external identities.

Secrets, codes and refresh tokens are stored as SHA-256 hashes only: each is a server-generated random
value of 256 bits or more, so a fast hash is as good as a slow one and keeps every token request cheap.
A session (`sid` in access tokens) is one grant's family of tokens: revoking it ends them all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, func
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column

from db.models import Base, UTCDateTime, utcnow


class OAuthClient(Base):
    __tablename__ = "oauth_clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    # Null for public clients (browser and mobile apps), which cannot keep a secret.
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    grant_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    scope: Mapped[str] = mapped_column(String(1000), default="")
    # The client may only send documents from the trusted-documents manifest (persisted queries).
    trusted_documents_only: Mapped[bool] = mapped_column(Boolean, default=False)
    # The manifests (file names) whose documents a trusted-documents-only client may run; empty: none.
    manifests: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    # A resource server: may introspect access tokens whose audience includes this value (RFC 7662).
    resource_audience: Mapped[str | None] = mapped_column(String(200))
    # May exchange tokens issued to other clients (RFC 8693 delegation) without being named in them.
    may_delegate: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    # How its ID tokens are signed: ES256 (default) or RS256 (OpenID Connect's mandatory algorithm).
    id_token_alg: Mapped[str] = mapped_column(String(8), default="ES256", server_default="ES256")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())


class OAuthSession(Base):
    """One grant to one client: the tokens issued from one authorization code, and their refreshes."""

    __tablename__ = "oauth_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.client_id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OAuthAuthorizationCode(Base):
    __tablename__ = "oauth_authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.client_id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("oauth_sessions.id", ondelete="CASCADE"), index=True)
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(1000))
    nonce: Mapped[str | None] = mapped_column(String(255))
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(8))
    auth_time: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OAuthRefreshToken(Base):
    __tablename__ = "oauth_refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("oauth_sessions.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(1000))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when the token is exchanged for its successor; presenting it again revokes the session.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ExternalIdentity(Base):
    """A user of a trusted external issuer (Keycloak, Auth0, …), mapped to a local user on first sight."""

    __tablename__ = "external_identities"

    issuer: Mapped[str] = mapped_column(String(500), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())


def as_list(value: Any) -> list[str]:
    """A JSON list column's value, whatever the driver handed back."""
    return [str(item) for item in value] if isinstance(value, list) else []
