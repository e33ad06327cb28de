"""Accounts with passwords: registration and password changes (hashing and strength are auth's business)."""

from __future__ import annotations

import anyio.to_thread
from sqlalchemy import update

from auth.passwords import hash_password, verify_password, weakness
from db.engine import Sessions
from db.models import User
from db.records import UserRecord
from loaders.batching import forget
from resolvers import validation
from resolvers.context import Context
from resolvers.errors import BadUserInput, NotFound
from resolvers.users import create_user


async def register(sessions: Sessions, *, email: str, name: str, password: str) -> User:
    """A new member account; `BadUserInput` for a bad or taken email, a blank name or a weak password."""
    address = validation.email(email)
    clean_name = validation.required_text(name, "name", 200)
    problem = weakness(password, [address, address.partition("@")[0], clean_name])
    if problem:
        raise BadUserInput(problem, field="password")
    password_hash = await anyio.to_thread.run_sync(hash_password, password)  # argon2 is CPU-bound by design
    return await create_user(sessions, email=address, name=clean_name, password_hash=password_hash)


async def change_password(ctx: Context, current_password: str, new_password: str) -> UserRecord:
    """Set a new password and sign out every other session of the user (their refresh tokens stop working)."""
    user_id = ctx.require_user()
    user = await ctx.loaders.users.by_id.load(user_id)
    if user is None:
        raise NotFound("User not found.")
    if not await anyio.to_thread.run_sync(verify_password, user.password_hash or "", current_password[:2048]):
        raise BadUserInput("The current password is not right.", field="currentPassword")
    problem = weakness(new_password, [user.email, user.email.partition("@")[0], user.name])
    if problem:
        raise BadUserInput(problem, field="newPassword")
    password_hash = await anyio.to_thread.run_sync(hash_password, new_password)
    async with ctx.sessions.begin() as session:
        await session.execute(update(User).where(User.id == user_id).values(password_hash=password_hash))
    forget(ctx.loaders.users.by_id, user_id)
    if ctx.revoke_sessions is not None:
        assert ctx.viewer is not None
        await ctx.revoke_sessions(user_id, keep=ctx.viewer.session_id)
    refreshed = await ctx.loaders.users.by_id.load(user_id)
    assert refreshed is not None
    return refreshed
