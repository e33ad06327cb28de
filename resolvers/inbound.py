"""Inbound webhook events act as a configured user: this builds their `Context`.

The user is looked up by email each time an event is applied, so a removed account is noticed;
the caller passes the scopes (the task scopes), so a source can do to tasks exactly what that user
could do through GraphQL, and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from db.engine import Sessions
from db.models import User
from loaders import Loaders
from resolvers.context import Context, Limits, Viewer
from resolvers.errors import NotFound


async def acting_context(
    sessions: Sessions, email: str, scopes: Iterable[str], *, source: str, request_id: str, limits: Limits
) -> Context:
    """A context for `source`'s events; `NotFound` when its user does not exist (any more)."""
    async with sessions() as session:
        user = await session.scalar(select(User).where(User.email == email.lower()))
    if user is None:
        raise NotFound(f"The user this source acts as ({email}) does not exist.")
    viewer = Viewer(user.id, frozenset(scopes), user.role, client_id=f"webhook:{source}")
    return Context(sessions, Loaders(sessions, user.id), viewer, request_id, limits)
