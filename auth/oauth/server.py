"""authlib's `AuthorizationServer` on Starlette: the thin adapter authlib has for Flask and Django, not for us.

authlib's server is synchronous and our database is async, so a request is first read in the event
loop (`read_request`), then handed to authlib in a worker thread (`TandemAuthorizationServer.respond`);
whenever authlib asks for a client, a code or a token, `run` hops back onto the event loop to
fetch it. authlib's answer comes back as an `OAuthResponse` and becomes a Starlette response.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio.from_thread
import anyio.to_thread
from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

from auth import scopes
from auth.external import ExternalIssuers
from auth.oauth import data
from auth.oauth.models import Client, GrantUser
from auth.revocation import RevocationList
from auth.tokens import TRUSTED_DOCUMENTS_ONLY, TRUSTED_MANIFESTS, TokenService
from db.engine import Sessions

log = logging.getLogger("tandem.oauth")

T = TypeVar("T")

FORM = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 64 * 1024


class RequestTooLarge(Exception):
    pass


class MalformedRequest(Exception):
    """A protocol parameter outside its grammar (RFC 6749 Appendix A), refused before authlib sees it."""


# RFC 6749 Appendix A: protocol parameters are printable ASCII; response_type is narrower still (and
# authlib echoes it into an error description, which raises on anything else).
_VSCHAR = re.compile(r"[\x20-\x7e]*")
_RESPONSE_TYPE = re.compile(r"[A-Za-z0-9_ ]*")
PROTOCOL_PARAMETERS = frozenset({
    "response_type", "client_id", "client_secret", "redirect_uri", "scope", "state", "code", "grant_type",
    "refresh_token", "code_verifier", "code_challenge", "code_challenge_method", "token", "token_type_hint",
    "nonce", "prompt", "subject_token", "subject_token_type", "actor_token", "actor_token_type",
    "requested_token_type", "audience", "resource",
})


def _check_grammar(params: list[tuple[str, str]]) -> None:
    for name, value in params:
        if name == "response_type" and not _RESPONSE_TYPE.fullmatch(value):
            raise MalformedRequest("'response_type' is malformed.")
        if name in PROTOCOL_PARAMETERS and not _VSCHAR.fullmatch(value):
            raise MalformedRequest(f"'{name}' must be printable ASCII.")


@dataclass(frozen=True)
class PreparedRequest:
    """Everything authlib reads of an HTTP request, read up front so the worker thread never awaits."""

    method: str
    uri: str
    headers: Headers
    params: list[tuple[str, str]]


async def read_request(request: Request, public_base: str, *, with_query: bool) -> PreparedRequest:
    """Read the form body (and, for the authorization endpoint, the query string too).

    `uri` is the request as the public sees it, under the issuer URL: behind a TLS-terminating proxy
    the app sees http, and authlib refuses plain http except on loopback (RFC 8252 §7.3).
    """
    params: list[tuple[str, str]] = list(request.query_params.multi_items()) if with_query else []
    if request.method == "POST":
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
            raise RequestTooLarge()
        if request.headers.get("content-type", "").split(";")[0].strip().lower() == FORM:
            form = await request.form(max_files=0, max_fields=100)
            params += [(key, value) for key, value in form.multi_items() if isinstance(value, str)]
    _check_grammar(params)
    query = f"?{request.url.query}" if request.url.query else ""
    return PreparedRequest(request.method, public_base.rstrip("/") + request.url.path + query, request.headers, params)


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, params: list[tuple[str, str]]) -> None:
        self._data: dict[str, str] = {}
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in params:
            self._data.setdefault(key, value)
            self._datalist[key].append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class StarletteOAuth2Request(OAuth2Request):  # type: ignore[misc]
    def __init__(self, prepared: PreparedRequest) -> None:
        super().__init__(method=prepared.method, uri=prepared.uri, headers=prepared.headers)
        self.payload = _Payload(prepared.params)

    @property
    def args(self) -> dict[str, str]:
        return self.payload.data

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data


@dataclass
class OAuthResponse:
    """authlib's `(status, body, headers)`, kept plain until it is back in the event loop."""

    status: int
    body: Any
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def location(self) -> str | None:
        return next((value for name, value in self.headers if name.lower() == "location"), None)

    @location.setter
    def location(self, value: str) -> None:  # RFC 9207's IssuerParameter rewrites it
        self.headers = [(n, v) for n, v in self.headers if n.lower() != "location"] + [("Location", value)]

    def to_starlette(self) -> Response:
        body = json.dumps(self.body) if isinstance(self.body, dict) else (self.body or "")
        headers = dict(self.headers)
        media_type = headers.pop("Content-Type", None) or ("application/json" if isinstance(self.body, dict) else None)
        return Response(body, status_code=self.status, headers=headers, media_type=media_type)


@dataclass(frozen=True)
class ServerConfig:
    issuer: str
    audience: str
    access_token_ttl_seconds: int
    refresh_token_ttl_seconds: int
    authorization_code_ttl_seconds: int
    # Downstream services a Tandem token may be exchanged into (RFC 8693 `audience`).
    exchange_audiences: tuple[str, ...] = ()


def trusted_documents_claims(client: Client) -> dict[str, Any]:
    """What a trusted-documents-only client's tokens carry: the flag and the manifests it ships."""
    if not client.row.trusted_documents_only:
        return {}
    return {TRUSTED_DOCUMENTS_ONLY: True, TRUSTED_MANIFESTS: sorted(client.row.manifests or [])}


class TandemAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(
        self, sessions: Sessions, tokens: TokenService, revocations: RevocationList, external: ExternalIssuers,
        config: ServerConfig,
    ) -> None:
        super().__init__(scopes_supported=sorted(scopes.ALL))
        self.sessions = sessions
        self.tokens = tokens
        self.revocations = revocations
        self.external = external
        self.config = config
        self.register_token_generator("default", BearerTokenGenerator(
            self._access_token, self._refresh_token, lambda client, grant_type: config.access_token_ttl_seconds,
        ))

    # --- bridging: authlib runs in a worker thread, our data lives in the event loop -----------------

    @staticmethod
    def run(function: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """From authlib's worker thread, run `function(*args)` on the event loop and wait for it."""
        return anyio.from_thread.run(function, *args)

    async def respond(self, handle: Callable[[], OAuthResponse]) -> Response:
        response = await anyio.to_thread.run_sync(handle)
        return response.to_starlette()

    # --- what authlib asks of a framework integration ------------------------------------------------

    def create_oauth2_request(self, request: PreparedRequest | OAuth2Request) -> OAuth2Request:
        return request if isinstance(request, OAuth2Request) else StarletteOAuth2Request(request)

    def create_json_request(self, request: PreparedRequest) -> None:
        raise NotImplementedError("no JSON endpoints (dynamic client registration is not offered)")

    def handle_response(self, status: int, body: Any, headers: Iterable[tuple[str, str]]) -> OAuthResponse:
        return OAuthResponse(status, body, list(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def query_client(self, client_id: str) -> Client | None:
        row = self.run(data.client_by_id, self.sessions, client_id)
        return Client(row) if row else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        if "refresh_token" not in token:
            return
        user: GrantUser = request.user
        self.run(lambda: data.save_refresh_token(
            self.sessions, token["refresh_token"], session_id=user.session_id, client_id=request.client.client_id,
            user_id=user.user.id, scope=token.get("scope", ""), ttl_seconds=self.config.refresh_token_ttl_seconds,
        ))

    # --- tokens ----------------------------------------------------------------------------------------

    def _access_token(self, client: Client, grant_type: str, user: GrantUser | None, scope: str) -> str:
        # RFC 9068 §2.2: a user's id as subject, or the client's own id when no user is involved.
        subject = str(user.user.id) if user else client.client_id
        extra: dict[str, Any] = {"sid": user.session_id} if user else {}
        extra.update(trusted_documents_claims(client))
        return self.tokens.issue_access_token(subject, scope.split(), client_id=client.client_id, extra=extra)

    @staticmethod
    def _refresh_token(**_: Any) -> str:
        return secrets.token_urlsafe(48)

    async def revoke_session(self, session_id: str) -> None:
        """End a token family: its refresh tokens now, its access tokens at their next use."""
        await data.revoke_session(self.sessions, session_id)
        await self.revocations.revoke_sessions([session_id])
        log.warning("oauth session revoked", extra={"session_id": session_id})

    async def revoke_user_sessions(self, user_id: int, *, keep: str | None) -> None:
        """Every session of the user but `keep` (a password change signs out everywhere else)."""
        await self.revocations.revoke_sessions(await data.revoke_user_sessions(self.sessions, user_id, keep=keep))
