"""The authorization endpoint's browser side: who is signed in, CSRF tokens, and failed-login limits.

A sign-in is a server-side record in the `Store`, found by a random cookie (HttpOnly, SameSite=Lax,
path /oauth). Each record carries its own CSRF token (the synchronizer-token pattern): every form
posts it back, and signing in replaces both cookie and token, so a session fixed beforehand is useless.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass

from starlette.requests import Request
from starlette.responses import Response

from auth.oauth.data import digest
from auth.store import Store

COOKIE = "tandem_signin"
# How long a sign-in lasts: new authorizations within it need only the consent click.
SIGNIN_TTL_SECONDS = 30 * 60


@dataclass
class BrowserSession:
    id: str
    csrf: str
    user_id: int | None = None
    auth_time: int | None = None
    is_new: bool = False

    def csrf_matches(self, submitted: str | None) -> bool:
        return bool(submitted) and hmac.compare_digest(self.csrf.encode(), str(submitted).encode())


class BrowserSessions:
    def __init__(self, store: Store, *, secure_cookies: bool) -> None:
        self.store = store
        self.secure_cookies = secure_cookies

    async def load(self, request: Request) -> BrowserSession:
        cookie = request.cookies.get(COOKIE)
        if cookie:
            raw = await self.store.get(f"browser:{digest(cookie)}")
            if raw:
                fields = json.loads(raw)
                return BrowserSession(cookie, fields["csrf"], fields.get("user_id"), fields.get("auth_time"))
        session = BrowserSession(secrets.token_urlsafe(32), secrets.token_urlsafe(32), is_new=True)
        await self._save(session)
        return session

    async def _save(self, session: BrowserSession) -> None:
        fields = {k: v for k, v in asdict(session).items() if k in ("csrf", "user_id", "auth_time")}
        await self.store.put(f"browser:{digest(session.id)}", json.dumps(fields), SIGNIN_TTL_SECONDS)

    async def sign_in(self, old: BrowserSession, user_id: int) -> BrowserSession:
        await self.store.delete(f"browser:{digest(old.id)}")
        session = BrowserSession(secrets.token_urlsafe(32), secrets.token_urlsafe(32), user_id, int(time.time()),
                                 is_new=True)
        await self._save(session)
        return session

    async def sign_out(self, old: BrowserSession) -> BrowserSession:
        await self.store.delete(f"browser:{digest(old.id)}")
        session = BrowserSession(secrets.token_urlsafe(32), secrets.token_urlsafe(32), is_new=True)
        await self._save(session)
        return session

    def attach(self, response: Response, session: BrowserSession) -> Response:
        if session.is_new:
            response.set_cookie(COOKIE, session.id, max_age=SIGNIN_TTL_SECONDS, path="/oauth", httponly=True,
                                samesite="lax", secure=self.secure_cookies)
        return response


class LoginThrottle:
    """Sign-in and password attempts per account and per client IP, in fixed windows; a full window
    blocks until it ends. An attempt is counted before the password is checked (one atomic increment),
    so parallel guesses cannot all pass the check before any is counted; a success gives it back.
    `changePassword` counts against the same account (the `AttemptLimiter` the context carries)."""

    WINDOW_SECONDS = 15 * 60
    PER_ACCOUNT = 5
    PER_IP = 20

    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def _keys(account: str, address: str | None) -> tuple[str, str]:
        return f"login:account:{digest(account.strip().lower())}", f"login:ip:{digest(address or 'unknown')}"

    async def attempt(self, account: str, address: str | None) -> int:
        """Count one attempt; seconds until the next is allowed when this one is over a limit, else 0."""
        waits = []
        for key, limit in zip(self._keys(account, address), (self.PER_ACCOUNT, self.PER_IP), strict=True):
            if await self.store.incr(key, self.WINDOW_SECONDS) > limit:
                waits.append(max(1, await self.store.ttl(key)))
        return max(waits, default=0)

    async def succeeded(self, account: str, address: str | None) -> None:
        for key in self._keys(account, address):
            await self.store.decr(key)
