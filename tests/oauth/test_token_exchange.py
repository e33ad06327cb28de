"""RFC 8693 token exchange: external identity-provider tokens in, Tandem tokens out; Tandem tokens narrowed.

The external identity provider is played by a key pair made here; its JWKS reaches Tandem as a file
(through settings), inline, or over real HTTP from a loopback server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.settings import Settings
from auth.external import ExternalIssuers, TrustedIssuer
from auth.passwords import hash_password
from auth.tokens import InvalidToken
from db.engine import Sessions
from db.models import User
from resolvers.users import create_user
from tests.conftest import GRAPHQL_RESPONSE, without_cost
from tests.live_server import LiveServer
from tests.oauth.conftest import (
    ACCESS_TOKEN_TYPE,
    INTROSPECT,
    REVOKE,
    TOKEN,
    TOKEN_EXCHANGE,
    RegisteredClient,
    code_flow_tokens,
    sqlite_only,
    viewer_status,
)

OAuthClientFactory = Callable[..., AsyncOAuth2Client]

IDP = "https://idp.example.test/realms/acme"
DIRECT_IDP = "https://direct.example.test"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
DOWNSTREAM = "https://reports.example.test"


class IdentityProvider:
    def __init__(self, issuer: str, kid: str = "idp-key-1") -> None:
        self.issuer = issuer
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def token(self, **overrides: Any) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": "idp-user-7", "aud": "tandem", "iat": now, "exp": now + 300,
                  "jti": f"idp-{now}", "email": "kim@acme.test", "email_verified": True, "name": "Kim",
                  "azp": "acme-portal", "scope": "openid email"}
        claims.update(overrides)
        claims = {name: value for name, value in claims.items() if value is not None}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})


@pytest.fixture(scope="module")
def idp() -> IdentityProvider:
    return IdentityProvider(IDP)


@pytest.fixture(scope="module")
def direct_idp() -> IdentityProvider:
    return IdentityProvider(DIRECT_IDP, kid="direct-1")


@pytest.fixture
def settings(settings: Settings, idp: IdentityProvider, direct_idp: IdentityProvider, tmp_path: Path) -> Settings:
    jwks_file = tmp_path / "idp-jwks.json"
    jwks_file.write_text(json.dumps(idp.jwks()))
    issuers = [
        TrustedIssuer(issuer=IDP, jwks_file=jwks_file, scopes=["profile", "tasks:read", "tasks:write"]),
        TrustedIssuer(issuer=DIRECT_IDP, jwks=direct_idp.jwks(), scopes=["tasks:read"], accept_at_graphql=True),
    ]
    return settings.model_copy(update={"trusted_issuers": issuers, "exchange_audiences": [DOWNSTREAM]})


@pytest.fixture
async def mobile_app(sessions: Sessions) -> RegisteredClient:
    """A public mobile app that signs people in at the company's identity provider, then exchanges."""
    from auth.oauth.data import create_client

    client, _ = await create_client(sessions, name="Mobile", redirect_uris=["com.example.tandem:/cb"],
                                    scope=["profile", "tasks:read", "tasks:write", "documents:read"],
                                    grant_types=["authorization_code", "refresh_token", TOKEN_EXCHANGE],
                                    confidential=False)
    return RegisteredClient(client.client_id, None)


@pytest.fixture
async def delegate(sessions: Sessions) -> RegisteredClient:
    """A confidential backend registered for delegation: it exchanges tokens other clients were issued,
    and as the reports service's resource server it may introspect tokens meant for it."""
    from auth.oauth.data import create_client

    client, secret = await create_client(
        sessions, name="Reports backend", redirect_uris=[], scope=["profile", "tasks:read", "documents:read"],
        grant_types=[TOKEN_EXCHANGE], confidential=True, may_delegate=True, resource_audience=DOWNSTREAM,
    )
    return RegisteredClient(client.client_id, secret)


async def _exchange(oauth: AsyncOAuth2Client, subject_token: str, token_type: str = JWT_TYPE, **extra: Any) -> Any:
    return await oauth.fetch_token(TOKEN, grant_type=TOKEN_EXCHANGE, subject_token=subject_token,
                                   subject_token_type=token_type, **extra)


async def _exchange_error(oauth: AsyncOAuth2Client, subject_token: str, token_type: str = JWT_TYPE,
                          **extra: Any) -> OAuthError:
    with pytest.raises(OAuthError) as caught:
        await _exchange(oauth, subject_token, token_type, **extra)
    return caught.value


async def _user_count(sessions: Sessions) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


# --- external issuer → Tandem -------------------------------------------------------------------------


async def test_an_external_token_becomes_a_tandem_token_for_a_new_local_user(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, mobile_app: RegisteredClient, idp: IdentityProvider,
    sessions: Sessions,
) -> None:
    oauth = oauth_client(mobile_app)
    token = await _exchange(oauth, idp.token())
    assert token["issued_token_type"] == ACCESS_TOKEN_TYPE and token["token_type"] == "Bearer"
    assert token["scope"] == "profile tasks:read tasks:write"  # the issuer's allowance, within the client's
    assert "refresh_token" not in token
    claims = jwt.decode(token["access_token"], options={"verify_signature": False})
    assert claims["iss"] == "http://127.0.0.1:8000" and claims["aud"] == "tandem"
    assert claims["client_id"] == mobile_app.client_id

    assert await viewer_status(http, token["access_token"]) == (200, {"data": {"viewer": {"name": "Kim"}}})
    users = await _user_count(sessions)
    again = await _exchange(oauth, idp.token(jti="second"))
    assert jwt.decode(again["access_token"], options={"verify_signature": False})["sub"] == claims["sub"]
    assert await _user_count(sessions) == users  # the same person is not created twice


async def test_an_existing_account_is_linked_only_for_a_verified_email(
    oauth_client: OAuthClientFactory, mobile_app: RegisteredClient, idp: IdentityProvider, sessions: Sessions,
) -> None:
    local = await create_user(sessions, email="kim@acme.test", name="Kim Local", password_hash=hash_password("x"))
    oauth = oauth_client(mobile_app)
    error = await _exchange_error(oauth, idp.token(email_verified=False))
    assert error.error == "invalid_request"
    token = await _exchange(oauth, idp.token())
    assert jwt.decode(token["access_token"], options={"verify_signature": False})["sub"] == str(local.id)


@sqlite_only
async def test_the_issuers_allowance_caps_the_scope(
    oauth_client: OAuthClientFactory, mobile_app: RegisteredClient, idp: IdentityProvider
) -> None:
    oauth = oauth_client(mobile_app)
    assert (await _exchange(oauth, idp.token(), scope="tasks:read"))["scope"] == "tasks:read"
    error = await _exchange_error(oauth, idp.token(), scope="tasks:read documents:read")
    assert error.error == "invalid_scope"


def _forgeries(idp: IdentityProvider) -> dict[str, str]:
    stranger = IdentityProvider(IDP)  # right issuer and kid, wrong key
    now = int(time.time())
    unsigned = jwt.encode({"iss": IDP, "sub": "x", "aud": "tandem", "iat": now, "exp": now + 60}, None,
                          algorithm="none")
    return {
        "wrong-audience": idp.token(aud="another-api"),
        "expired": idp.token(iat=now - 3600, exp=now - 600),
        "other-key": stranger.token(),
        "unknown-kid": IdentityProvider(IDP, kid="nope").token(),
        "alg-none": unsigned,
        "hs256": jwt.encode({"iss": IDP, "sub": "x", "aud": "tandem", "iat": now, "exp": now + 60}, "secret" * 6,
                            algorithm="HS256", headers={"kid": idp.kid}),
        "unknown-issuer": IdentityProvider("https://elsewhere.example.test").token(),
        "no-email": idp.token(sub="someone-new", email=None),
        "nul-in-claims": idp.token(sub="nul\x00sub", email="nul\x00@acme.test"),
        "garbage": "not-a-jwt",
    }


@sqlite_only
async def test_forged_or_foreign_external_tokens_are_refused(
    oauth_client: OAuthClientFactory, mobile_app: RegisteredClient, idp: IdentityProvider, sessions: Sessions
) -> None:
    oauth = oauth_client(mobile_app)
    users = await _user_count(sessions)
    for name, forged in _forgeries(idp).items():
        error = await _exchange_error(oauth, forged)
        assert error.error == "invalid_request", name
    assert await _user_count(sessions) == users


@sqlite_only
async def test_clients_without_the_grant_cannot_exchange(
    oauth_client: OAuthClientFactory, web_app: RegisteredClient, idp: IdentityProvider
) -> None:
    error = await _exchange_error(oauth_client(web_app), idp.token())
    assert error.error == "unauthorized_client"


@sqlite_only
async def test_malformed_exchange_requests_are_refused(
    oauth_client: OAuthClientFactory, mobile_app: RegisteredClient, idp: IdentityProvider
) -> None:
    oauth = oauth_client(mobile_app)
    assert (await _exchange_error(oauth, idp.token(), token_type="urn:example:saml")).error == "invalid_request"
    assert (await _exchange_error(oauth, idp.token(), actor_token=idp.token())).error == "invalid_request"
    assert (await _exchange_error(oauth, idp.token(),
                                  requested_token_type="urn:ietf:params:oauth:token-type:refresh_token")
            ).error == "invalid_request"


# --- Tandem → narrower Tandem -------------------------------------------------------------------------


@sqlite_only
async def test_a_tandem_token_can_be_narrowed(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User,
    delegate: RegisteredClient,
) -> None:
    original = await code_flow_tokens(http, oauth_client, web_app, scope="profile tasks:read documents:read")
    oauth = oauth_client(delegate)

    fewer = await _exchange(oauth, original["access_token"], ACCESS_TOKEN_TYPE, scope="tasks:read")
    assert fewer["scope"] == "tasks:read"
    fewer_claims = jwt.decode(fewer["access_token"], options={"verify_signature": False})
    original_claims = jwt.decode(original["access_token"], options={"verify_signature": False})
    assert fewer_claims["sub"] == str(person.id) and fewer_claims["client_id"] == delegate.client_id
    assert fewer_claims["act"] == {"sub": delegate.client_id}  # RFC 8693 §4.1: who acts for Pat
    assert fewer_claims["exp"] <= original_claims["exp"] and fewer_claims["sid"] == original_claims["sid"]
    assert await viewer_status(http, fewer["access_token"]) == (200, {"data": {"viewer": {"name": "Pat"}}})

    downstream = await _exchange(oauth, original["access_token"], ACCESS_TOKEN_TYPE, audience=DOWNSTREAM)
    assert jwt.decode(downstream["access_token"], options={"verify_signature": False})["aud"] == DOWNSTREAM
    # Meant for the reports service, not for us.
    assert (await viewer_status(http, downstream["access_token"]))[0] == 401
    introspected = (await oauth.introspect_token(INTROSPECT, token=downstream["access_token"])).json()
    assert introspected["active"] is True and introspected["aud"] == DOWNSTREAM

    # Narrower only: never more scopes, never an unknown audience, never back to the whole API.
    error = await _exchange_error(oauth, fewer["access_token"], ACCESS_TOKEN_TYPE, scope="tasks:read profile")
    assert error.error == "invalid_scope"
    error = await _exchange_error(oauth, original["access_token"], ACCESS_TOKEN_TYPE, audience="https://evil.test")
    assert error.error == "invalid_target"
    error = await _exchange_error(oauth, downstream["access_token"], ACCESS_TOKEN_TYPE, audience="tandem")
    assert error.error == "invalid_target"

    # The narrowed tokens live and die with the original session.
    await oauth_client(web_app).revoke_token(REVOKE, token=original["refresh_token"])
    assert (await viewer_status(http, fewer["access_token"]))[0] == 401
    error = await _exchange_error(oauth, original["access_token"], ACCESS_TOKEN_TYPE)
    assert error.error == "invalid_request"


@sqlite_only
async def test_a_forged_tandem_subject_token_is_refused(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, service: RegisteredClient, app: Starlette,
    alice: User,
) -> None:
    from tests.auth.test_tokens import FORGERIES, Forger

    forger = Forger(app.state.tokens, str(alice.id))
    for forgery in FORGERIES:
        error = await _exchange_error(oauth_client(service), forgery(forger), ACCESS_TOKEN_TYPE)
        assert error.error == "invalid_request", forgery.__name__


# --- external tokens directly at /graphql -----------------------------------------------------------------


@sqlite_only
async def test_a_configured_issuers_tokens_are_accepted_directly(
    http: httpx.AsyncClient, idp: IdentityProvider, direct_idp: IdentityProvider
) -> None:
    token = direct_idp.token(sub="direct-9", email="lee@direct.test", name="Lee", scope="tasks:read")
    response = await http.post("/graphql", json={"query": "{ viewer { name } tasks { totalCount } }"},
                               headers={"Authorization": f"Bearer {token}"})
    assert without_cost(response.json()) == {"data": {"viewer": {"name": "Lee"}, "tasks": {"totalCount": 0}}}
    # Only where configured: the exchange-only issuer's tokens are refused at /graphql.
    assert (await viewer_status(http, idp.token()))[0] == 401
    assert (await viewer_status(http, direct_idp.token(aud="another-api")))[0] == 401


# --- the issuer's keys over HTTP ----------------------------------------------------------------------


def test_keys_are_fetched_from_the_jwks_uri(idp: IdentityProvider) -> None:
    published = Starlette(routes=[Route("/jwks", lambda request: JSONResponse(idp.jwks()))])
    with LiveServer(published) as server:
        config = TrustedIssuer(issuer=IDP, jwks_uri=f"{server.url}/jwks")
        issuers = ExternalIssuers([config])
        claims = issuers.verify(idp.token(), config)
        assert (claims.subject, claims.email, claims.email_verified) == ("idp-user-7", "kim@acme.test", True)
        with pytest.raises(InvalidToken):
            issuers.verify(IdentityProvider(IDP, kid="rotated-away").token(), config)


def test_issuer_settings_refuse_symmetric_algorithms_and_ambiguous_keys() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        TrustedIssuer(issuer=IDP, jwks={"keys": []}, algorithms=["HS256"])
    with pytest.raises(ValidationError):
        TrustedIssuer(issuer=IDP)
    with pytest.raises(ValidationError):
        TrustedIssuer(issuer=IDP, jwks={"keys": []}, jwks_uri="https://idp.example.test/jwks")


# --- who may exchange whose token, and what the new token keeps -----------------------------------------


@sqlite_only
async def test_a_client_may_not_exchange_another_clients_token(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User,
    service: RegisteredClient, mobile_app: RegisteredClient,
) -> None:
    lifted = (await code_flow_tokens(http, oauth_client, web_app, scope="profile tasks:read"))["access_token"]
    for thief in (service, mobile_app):  # confidential, and public with no credentials at all
        error = await _exchange_error(oauth_client(thief), lifted, ACCESS_TOKEN_TYPE)
        assert error.error == "invalid_grant", thief


@sqlite_only
async def test_a_client_exchanges_its_own_tokens_and_those_that_name_it(
    app: Starlette, oauth_client: OAuthClientFactory, person: User, service: RegisteredClient,
    mobile_app: RegisteredClient,
) -> None:
    tokens = app.state.tokens
    own = tokens.issue_access_token(str(person.id), ["tasks:read"], client_id=mobile_app.client_id)
    assert (await _exchange(oauth_client(mobile_app), own, ACCESS_TOKEN_TYPE))["scope"] == "tasks:read"
    named = tokens.issue_access_token(str(person.id), ["tasks:read"], client_id=mobile_app.client_id,
                                      extra={"may_act": {"client_id": service.client_id}})
    exchanged = await _exchange(oauth_client(service), named, ACCESS_TOKEN_TYPE)
    claims = jwt.decode(exchanged["access_token"], options={"verify_signature": False})
    assert claims["act"] == {"sub": service.client_id} and claims["sub"] == str(person.id)
    # Naming someone else is no help.
    other = tokens.issue_access_token(str(person.id), ["tasks:read"], client_id=mobile_app.client_id,
                                      extra={"may_act": {"client_id": "tdm_someone_else"}})
    assert (await _exchange_error(oauth_client(service), other, ACCESS_TOKEN_TYPE)).error == "invalid_grant"


@sqlite_only
async def test_an_exchanged_token_keeps_the_trusted_documents_restriction(
    app: Starlette, http: httpx.AsyncClient, oauth_client: OAuthClientFactory, person: User,
    delegate: RegisteredClient,
) -> None:
    from auth.tokens import TRUSTED_DOCUMENTS_ONLY, TRUSTED_MANIFESTS

    mobile = app.state.tokens.issue_access_token(
        str(person.id), ["profile", "tasks:read"], client_id="tdm_mobile",
        extra={TRUSTED_DOCUMENTS_ONLY: True, TRUSTED_MANIFESTS: ["mobile-app.json"], "sid": "s-1"})
    exchanged = (await _exchange(oauth_client(delegate), mobile, ACCESS_TOKEN_TYPE))["access_token"]
    claims = jwt.decode(exchanged, options={"verify_signature": False})
    assert claims[TRUSTED_DOCUMENTS_ONLY] is True and claims[TRUSTED_MANIFESTS] == ["mobile-app.json"]
    assert claims["sid"] == "s-1" and set(claims["scope"].split()) <= {"profile", "tasks:read"}
    response = await http.post("/graphql", json={"query": "{ viewer { name } }"},
                               headers={"Authorization": f"Bearer {exchanged}", "Accept": GRAPHQL_RESPONSE})
    assert [e["extensions"]["code"] for e in response.json()["errors"]] == ["PERSISTED_QUERY_REQUIRED"]
