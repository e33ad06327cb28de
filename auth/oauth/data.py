"""The server's rows, read and written with the async session factory (each call its own transaction)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update

from db.engine import Sessions
from db.models import User, utcnow
from db.oauth import OAuthAuthorizationCode, OAuthClient, OAuthRefreshToken, OAuthSession


def digest(value: str) -> str:
    """What we store of a secret, code or refresh token: its SHA-256, hex."""
    return hashlib.sha256(value.encode()).hexdigest()


def new_id(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(24)


async def client_by_id(sessions: Sessions, client_id: str) -> OAuthClient | None:
    async with sessions() as session:
        return await session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))


async def user_by_id(sessions: Sessions, user_id: int) -> User | None:
    async with sessions() as session:
        return await session.get(User, user_id)


async def create_client(
    sessions: Sessions,
    *,
    name: str,
    redirect_uris: list[str],
    scope: list[str],
    grant_types: list[str],
    confidential: bool,
    trusted_documents_only: bool = False,
    client_id: str | None = None,
    manifests: list[str] | None = None,
    resource_audience: str | None = None,
    may_delegate: bool = False,
    id_token_alg: str = "ES256",
) -> tuple[OAuthClient, str | None]:
    """A new client and, for a confidential one, its secret: shown once, stored only as a hash."""
    secret = secrets.token_urlsafe(32) if confidential else None
    client = OAuthClient(
        client_id=client_id or new_id("tdm_"),
        secret_hash=digest(secret) if secret else None,
        name=name,
        redirect_uris=redirect_uris,
        grant_types=grant_types,
        scope=" ".join(sorted(set(scope))),
        trusted_documents_only=trusted_documents_only,
        manifests=sorted(set(manifests or [])),
        resource_audience=resource_audience,
        may_delegate=may_delegate,
        id_token_alg=id_token_alg,
    )
    async with sessions.begin() as session:
        session.add(client)
    return client, secret


# --- sessions: one grant's family of tokens -----------------------------------------------------------


async def create_session(sessions: Sessions, user_id: int, client_id: str) -> str:
    sid = new_id()
    async with sessions.begin() as session:
        session.add(OAuthSession(id=sid, user_id=user_id, client_id=client_id))
    return sid


async def session_active(sessions: Sessions, sid: str) -> bool:
    async with sessions() as session:
        row = await session.get(OAuthSession, sid)
    return row is not None and row.revoked_at is None


async def revoke_session(sessions: Sessions, sid: str) -> None:
    async with sessions.begin() as session:
        await session.execute(
            update(OAuthSession).where(OAuthSession.id == sid, OAuthSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )


async def revoke_user_sessions(sessions: Sessions, user_id: int, *, keep: str | None) -> list[str]:
    """Revoke every live session of the user except `keep`; returns the revoked session ids."""
    async with sessions.begin() as session:
        statement = select(OAuthSession.id).where(OAuthSession.user_id == user_id, OAuthSession.revoked_at.is_(None))
        if keep is not None:
            statement = statement.where(OAuthSession.id != keep)
        ids = list(await session.scalars(statement))
        if ids:
            await session.execute(update(OAuthSession).where(OAuthSession.id.in_(ids)).values(revoked_at=utcnow()))
    return ids


# --- authorization codes ------------------------------------------------------------------------------


async def save_code(sessions: Sessions, code: str, row: OAuthAuthorizationCode) -> None:
    row.code_hash = digest(code)
    async with sessions.begin() as session:
        session.add(row)


async def code_by_value(sessions: Sessions, code: str, client_id: str) -> OAuthAuthorizationCode | None:
    async with sessions() as session:
        return await session.scalar(select(OAuthAuthorizationCode).where(
            OAuthAuthorizationCode.code_hash == digest(code), OAuthAuthorizationCode.client_id == client_id,
        ))


async def consume_code(sessions: Sessions, code_hash: str) -> bool:
    """Mark the code used; false when another request used it first (one UPDATE, so one winner)."""
    async with sessions.begin() as session:
        result = await session.execute(
            update(OAuthAuthorizationCode)
            .where(OAuthAuthorizationCode.code_hash == code_hash, OAuthAuthorizationCode.used_at.is_(None))
            .values(used_at=utcnow())
        )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def nonce_used(sessions: Sessions, client_id: str, nonce: str) -> bool:
    async with sessions() as session:
        found = await session.scalar(select(OAuthAuthorizationCode.code_hash).where(
            OAuthAuthorizationCode.client_id == client_id, OAuthAuthorizationCode.nonce == nonce,
        ).limit(1))
    return found is not None


# --- refresh tokens -----------------------------------------------------------------------------------


async def save_refresh_token(
    sessions: Sessions, token: str, *, session_id: str, client_id: str, user_id: int, scope: str, ttl_seconds: int
) -> None:
    row = OAuthRefreshToken(
        token_hash=digest(token), session_id=session_id, client_id=client_id, user_id=user_id, scope=scope,
        expires_at=utcnow() + timedelta(seconds=ttl_seconds),
    )
    async with sessions.begin() as session:
        session.add(row)


async def refresh_token_by_value(sessions: Sessions, token: str) -> OAuthRefreshToken | None:
    async with sessions() as session:
        return await session.get(OAuthRefreshToken, digest(token))


async def consume_refresh_token(sessions: Sessions, token_hash: str) -> bool:
    async with sessions.begin() as session:
        result = await session.execute(
            update(OAuthRefreshToken)
            .where(OAuthRefreshToken.token_hash == token_hash, OAuthRefreshToken.used_at.is_(None))
            .values(used_at=utcnow())
        )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def expired(moment: datetime) -> bool:
    return moment <= utcnow()
