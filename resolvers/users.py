"""Users: the viewer, lookups, profile changes and account creation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update

from db.engine import Sessions
from db.models import User, UserRole
from db.records import UserRecord
from loaders.batching import forget
from loaders.soon import Soon, peek
from resolvers import validation
from resolvers.context import Context
from resolvers.errors import BadUserInput, NotFound


async def viewer_user(ctx: Context) -> UserRecord | None:
    if ctx.viewer is None or ctx.viewer.user_id is None:
        return None
    return await ctx.loaders.users.by_id.load(ctx.viewer.user_id)


async def visible_user(ctx: Context, user_id: int) -> UserRecord:
    # The team directory is open to users; of service clients, only admin ones may look people up.
    if ctx.viewer is None or not ctx.viewer.is_admin:
        ctx.require_user()
    user = await ctx.loaders.users.by_id.load(user_id)
    if user is None:
        raise NotFound("User not found.")
    return user


async def user_or_none(ctx: Context, user_id: int | None) -> UserRecord | None:
    return None if user_id is None else await ctx.loaders.users.by_id.load(user_id)


def user_soon(ctx: Context, user_id: int | None) -> Soon[UserRecord | None]:
    """`user_or_none`, without a coroutine when the user is loaded already (prefetched list items)."""
    return None if user_id is None else peek(ctx.loaders.users.by_id, user_id)


def can_see_email(ctx: Context, user: UserRecord) -> bool:
    return ctx.viewer is not None and (ctx.viewer.user_id == user.id or ctx.viewer.is_admin)


async def _email_taken(sessions: Sessions, address: str, except_id: int | None = None) -> bool:
    statement = select(func.count()).select_from(User).where(User.email == address)
    if except_id is not None:
        statement = statement.where(User.id != except_id)
    async with sessions() as session:
        return bool(await session.scalar(statement))


async def update_viewer(ctx: Context, changes: dict[str, Any]) -> UserRecord:
    user_id = ctx.require_user()
    values: dict[str, Any] = {}
    if "name" in changes:
        values["name"] = validation.required_text(changes["name"], "name", 200)
    if "email" in changes:
        address = validation.email(changes["email"])
        if await _email_taken(ctx.sessions, address, except_id=user_id):
            raise BadUserInput("That email address is already in use.", field="email")
        values["email"] = address
    if values:
        async with ctx.sessions.begin() as session:
            await session.execute(update(User).where(User.id == user_id).values(**values))
        forget(ctx.loaders.users.by_id, user_id)
    user = await ctx.loaders.users.by_id.load(user_id)
    if user is None:
        raise NotFound("User not found.")
    return user


class EmailTaken(BadUserInput):
    """Said to admins (CLI) and never to a stranger registering: that would tell who has an account."""


async def create_user(
    sessions: Sessions, *, email: str, name: str, password_hash: str | None, admin: bool = False
) -> User:
    """Create an account (CLI, seed, first sign-in through an external issuer)."""
    address = validation.email(email)
    clean_name = validation.required_text(name, "name", 200)
    if await _email_taken(sessions, address):
        raise EmailTaken("That email address is already in use.", field="email")
    user = User(
        email=address,
        name=clean_name,
        password_hash=password_hash,
        role=(UserRole.ADMIN if admin else UserRole.MEMBER).value,
    )
    async with sessions.begin() as session:
        session.add(user)
    return user


async def user_by_email(sessions: Sessions, email: str) -> User | None:
    async with sessions() as session:
        return await session.scalar(select(User).where(User.email == email.strip().lower()))
