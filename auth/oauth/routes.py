"""The authorization server on HTTP: /oauth/* and the /.well-known discovery documents."""

from __future__ import annotations

import logging
from typing import Any

import anyio.to_thread
from authlib.oauth2.rfc6749 import OAuth2Error
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from auth.authenticate import Authenticator, bearer_challenge
from auth.oauth import data, metadata, pages
from auth.oauth.browser import BrowserSession, BrowserSessions, LoginThrottle
from auth.oauth.grants import granted_scope, user_info
from auth.oauth.models import Client, GrantUser
from auth.oauth.server import (
    MalformedRequest,
    OAuthResponse,
    PreparedRequest,
    RequestTooLarge,
    TandemAuthorizationServer,
    read_request,
)
from auth.passwords import verify_password_or_dummy
from auth.viewer import bearer_token
from db.models import User
from resolvers.errors import Unauthenticated
from resolvers.users import user_by_email

log = logging.getLogger("tandem.oauth")

FORM_EXPIRED = "This form has expired. Please try again."


class OAuthHTTP:
    def __init__(
        self, server: TandemAuthorizationServer, authenticator: Authenticator, browser: BrowserSessions,
        throttle: LoginThrottle,
    ) -> None:
        self.server = server
        self.authenticator = authenticator
        self.browser = browser
        self.throttle = throttle
        self.issuer = server.config.issuer

    def routes(self) -> list[BaseRoute]:
        return [
            Route(metadata.AUTHORIZE, self.authorize, methods=["GET", "POST"]),
            Route(metadata.TOKEN, self.token, methods=["POST"]),
            Route(metadata.REVOKE, self.revoke, methods=["POST"]),
            Route(metadata.INTROSPECT, self.introspect, methods=["POST"]),
            Route(metadata.USERINFO, self.userinfo, methods=["GET", "POST"]),
            Route(pages.STYLESHEET, lambda request: pages.stylesheet(), methods=["GET"]),
            Route("/.well-known/oauth-authorization-server", self.server_metadata, methods=["GET"]),
            Route("/.well-known/openid-configuration", self.openid_configuration, methods=["GET"]),
        ]

    # --- token, revocation, introspection: authlib end to end ----------------------------------------

    async def _prepared(self, request: Request, *, with_query: bool = False) -> PreparedRequest | Response:
        try:
            return await read_request(request, self.issuer, with_query=with_query)
        except RequestTooLarge:
            return JSONResponse({"error": "invalid_request", "error_description": "The request is too large."}, 413)
        except MalformedRequest as exc:
            return JSONResponse({"error": "invalid_request", "error_description": str(exc)}, 400,
                                headers={"Cache-Control": "no-store"})

    async def token(self, request: Request) -> Response:
        prepared = await self._prepared(request)
        if isinstance(prepared, Response):
            return prepared
        return await self.server.respond(lambda: self.server.create_token_response(prepared))

    async def revoke(self, request: Request) -> Response:
        prepared = await self._prepared(request)
        if isinstance(prepared, Response):
            return prepared
        return await self.server.respond(lambda: self.server.create_endpoint_response("revocation", prepared))

    async def introspect(self, request: Request) -> Response:
        prepared = await self._prepared(request)
        if isinstance(prepared, Response):
            return prepared
        return await self.server.respond(lambda: self.server.create_endpoint_response("introspection", prepared))

    # --- discovery ------------------------------------------------------------------------------------

    async def server_metadata(self, request: Request) -> Response:
        return JSONResponse(dict(metadata.authorization_server_metadata(self.issuer)),
                            headers={"Cache-Control": "public, max-age=300"})

    async def openid_configuration(self, request: Request) -> Response:
        return JSONResponse(dict(metadata.openid_configuration(self.issuer)),
                            headers={"Cache-Control": "public, max-age=300"})

    # --- userinfo (OpenID Connect Core §5.3) -----------------------------------------------------------

    async def userinfo(self, request: Request) -> Response:
        try:
            token = bearer_token(request.headers.get("authorization"))
            if token is None:
                return _challenge(401, bearer_challenge())
            identity = await self.authenticator.identify(token)
        except Unauthenticated as exc:
            return _challenge(401, bearer_challenge("invalid_token", exc.message))
        if "openid" not in identity.scopes or identity.user_id is None:
            description = "This needs a user's token with the openid scope."
            return _challenge(403, bearer_challenge("insufficient_scope", description, "openid"))
        user = await data.user_by_id(self.server.sessions, identity.user_id)
        if user is None:
            return _challenge(401, bearer_challenge("invalid_token", "The access token's user no longer exists."))
        return JSONResponse(dict(user_info(user, " ".join(identity.scopes))))

    # --- the authorization endpoint: sign-in and consent ------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        prepared = await self._prepared(request, with_query=True)
        if isinstance(prepared, Response):
            return pages.error_page("This sign-in link is not valid", "The authorization request is malformed.",
                                    prepared.status_code)
        browser = await self.browser.load(request)
        user = await data.user_by_id(self.server.sessions, browser.user_id) if browser.user_id else None
        # Validate the authorization request first: a bad client or redirect_uri never gets a sign-in page.
        outcome = await anyio.to_thread.run_sync(self._consent_grant, prepared, user)
        if isinstance(outcome, OAuthResponse):
            return outcome.to_starlette()
        if isinstance(outcome, OAuth2Error):
            return pages.error_page("This sign-in link is not valid", outcome.get_error_description() or outcome.error)
        grant = outcome
        client: Client = grant.request.client
        if request.method == "POST":
            form = await request.form()
            if not browser.csrf_matches(_text(form.get("csrf_token"))):
                return self._page(grant, client, browser, user, error=FORM_EXPIRED, status=400)
            action = _text(form.get("action"))
            if action == "login":
                return await self._login(request, grant, client, browser, form)
            if action == "logout":
                browser = await self.browser.sign_out(browser)
                return self._page(grant, client, browser, None)
            if action == "consent" and user is not None:
                return await self._consent(grant, browser, user, _text(form.get("decision")))
            return self._page(grant, client, browser, user, error=FORM_EXPIRED, status=400)
        return self._page(grant, client, browser, user)

    def _consent_grant(self, prepared: PreparedRequest, user: User | None) -> Any:
        """authlib's validation of the authorization request (in a worker thread)."""
        try:
            return self.server.get_consent_grant(prepared, end_user=user)
        except OAuth2Error as error:
            if error.redirect_uri:  # validated against the client: the error goes back to it
                return self.server.handle_error_response(None, error)
            return error

    def _page(
        self, grant: Any, client: Client, browser: BrowserSession, user: User | None, *, error: str | None = None,
        status: int = 200, username: str = "", headers: dict[str, str] | None = None,
    ) -> Response:
        if user is None:
            page = pages.login_page(client_name=client.row.name, csrf=browser.csrf, error=error, username=username,
                                    status=status, headers=headers)
        else:
            scopes = granted_scope(grant.request.scope or "", user).split()
            page = pages.consent_page(client_name=client.row.name, user_name=user.name, user_email=user.email,
                                      scopes=scopes, csrf=browser.csrf, error=error, status=status)
        return self.browser.attach(page, browser)

    async def _login(
        self, request: Request, grant: Any, client: Client, browser: BrowserSession, form: Any
    ) -> Response:
        username = _text(form.get("username")).strip()[:320]
        password = _text(form.get("password"))[:1024]
        ip = request.client.host if request.client else "unknown"
        retry_after = await self.throttle.attempt(username, ip)  # counted before the slow check
        if retry_after:
            return self._page(grant, client, browser, None, username=username, status=429,
                              error=f"Too many failed sign-ins. Try again in {max(1, retry_after // 60)} minute(s).",
                              headers={"Retry-After": str(retry_after)})
        # PostgreSQL text cannot hold NUL: such a name matches nobody, without asking the database.
        user = await user_by_email(self.server.sessions, username) if username and "\x00" not in username else None
        # Verified even for an unknown email (against a dummy hash): the timing tells nothing.
        valid = await anyio.to_thread.run_sync(verify_password_or_dummy, user.password_hash if user else None, password)
        if user is None or not valid:
            log.info("failed sign-in", extra={"client_id": client.client_id})
            return self._page(grant, client, browser, None, username=username, status=400,
                              error="The email or password is not right.")
        await self.throttle.succeeded(username, ip)
        browser = await self.browser.sign_in(browser, user.id)
        return self._page(grant, client, browser, user)

    async def _consent(self, grant: Any, browser: BrowserSession, user: User, decision: str) -> Response:
        grant_user = None
        if decision == "allow":
            session_id = await data.create_session(self.server.sessions, user.id, grant.request.client.client_id)
            grant_user = GrantUser(user, session_id, browser.auth_time)
        return await self.server.respond(
            lambda: self.server.create_authorization_response(grant.request, grant_user=grant_user, grant=grant)
        )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _challenge(status: int, challenge: str) -> Response:
    error = "invalid_token" if status == 401 else "insufficient_scope"
    return JSONResponse({"error": error}, status, headers={"WWW-Authenticate": challenge})
