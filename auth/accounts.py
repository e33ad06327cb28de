"""Accounts with passwords: registration and password changes (hashing and strength are auth's business)."""

from __future__ import annotations

import logging

import anyio.to_thread
from sqlalchemy import update

from auth.passwords import hash_password, verify_password, weakness
from db.models import User
from db.records import UserRecord
from loaders.batching import forget
from resolvers import validation
from resolvers.context import Context
from resolvers.errors import BadUserInput, NotFound, RateLimited
from resolvers.users import EmailTaken, create_user

log = logging.getLogger("tandem.auth")


async def register(ctx: Context, *, email: str, name: str, password: str) -> None:
    """A new member account, unless the address is taken: the caller is told nothing either way, so
    `register` cannot be asked which addresses have accounts (both ways hash the password, so the
    timing tells nothing either). `BadUserInput` for a bad email, a blank name or a weak password;
    `RateLimited` past the registrations allowed per address and per IP in the sliding window."""
    address = validation.email(email)
    clean_name = validation.required_text(name, "name", 200)
    if ctx.registrations is not None and (retry_after := await ctx.registrations.attempt(address, ctx.client_address)):
        raise RateLimited(f"Too many registrations. Try again in {retry_after} s.", retry_after=retry_after)
    problem = weakness(password, [address, address.partition("@")[0], clean_name])
    if problem:
        raise BadUserInput(problem, field="password")
    password_hash = await anyio.to_thread.run_sync(hash_password, password)  # argon2 is CPU-bound by design
    try:
        await create_user(ctx.sessions, email=address, name=clean_name, password_hash=password_hash)
    except EmailTaken:
        log.info("registration for an address that has an account", extra={"request_id": ctx.request_id})


async def change_password(ctx: Context, current_password: str, new_password: str) -> UserRecord:
    """Set a new password and sign out every other session of the user (their refresh tokens stop working)."""
    user_id = ctx.require_user()
    user = await ctx.loaders.users.by_id.load(user_id)
    if user is None:
        raise NotFound("User not found.")
    attempts = ctx.password_attempts
    # Counted before argon2 runs, against the same per-account budget as sign-in: the cost bucket alone
    # would allow a hundred guesses in a burst.
    if attempts is not None and (retry_after := await attempts.attempt(user.email, ctx.client_address)):
        raise RateLimited(f"Too many password attempts. Try again in {retry_after} s.", retry_after=retry_after)
    if not await anyio.to_thread.run_sync(verify_password, user.password_hash or "", current_password[:2048]):
        raise BadUserInput("The current password is not right.", field="currentPassword")
    if attempts is not None:
        await attempts.succeeded(user.email, ctx.client_address)
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
