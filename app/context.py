"""Builds the per-request `Context`: verified viewer, fresh loaders, request id, limits."""

from __future__ import annotations

import re

from auth.tokens import InvalidToken, TokenService
from auth.viewer import bearer_token
from db.engine import Sessions
from loaders import Loaders
from realtime.hub import Realtime
from resolvers.context import Context, Limits, Viewer
from resolvers.errors import Unauthenticated

# ASCII only: str.isdigit() also accepts superscripts and other scripts' digits.
_USER_SUBJECT = re.compile(r"[1-9][0-9]{0,9}")


def user_id_of(subject: str) -> int:
    if not _USER_SUBJECT.fullmatch(subject) or int(subject) > 2**31 - 1:
        raise Unauthenticated("The access token does not name a user.")
    return int(subject)


class ContextFactory:
    def __init__(
        self, sessions: Sessions, tokens: TokenService, limits: Limits, realtime: Realtime | None = None
    ) -> None:
        self.sessions = sessions
        self.tokens = tokens
        self.limits = limits
        self.realtime = realtime

    def anonymous(self, request_id: str) -> Context:
        return Context(self.sessions, Loaders(self.sessions, None), None, request_id, self.limits, self.realtime)

    async def __call__(self, authorization: str | None, request_id: str) -> Context:
        """Raises `Unauthenticated` for a token that is present but not good: never silently anonymous."""
        token = bearer_token(authorization)
        if token is None:
            return self.anonymous(request_id)
        try:
            claims = self.tokens.verify(token)
        except InvalidToken as exc:
            raise Unauthenticated(str(exc)) from None
        user_id = user_id_of(claims.subject)
        loaders = Loaders(self.sessions, user_id)
        user = await loaders.users.by_id.load(user_id)  # primes the loader for `viewer`
        if user is None:
            raise Unauthenticated("The access token's user no longer exists.")
        viewer = Viewer(user.id, claims.scopes, user.role, claims.client_id, claims.token_id)
        return Context(self.sessions, loaders, viewer, request_id, self.limits, self.realtime)
