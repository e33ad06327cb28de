"""Discovery documents, the JWKS through a key rotation, and forged tokens at the OAuth endpoints."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata
from starlette.applications import Starlette

from app.settings import Settings
from auth.keys import add_key, retire_keys
from auth.oauth.metadata import authorization_server_metadata, openid_configuration
from db.models import User
from tests.auth.test_tokens import FORGERIES, FORGERY_IDS, Forger, Forgery
from tests.conftest import serve, without_cost
from tests.oauth.conftest import INTROSPECT, USERINFO, RegisteredClient, code_flow_tokens, viewer_status

OAuthClientFactory = Callable[..., AsyncOAuth2Client]
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@sqlite_only
async def test_discovery_documents_describe_the_server(http: httpx.AsyncClient) -> None:
    oauth = (await http.get("/.well-known/oauth-authorization-server")).json()
    openid = (await http.get("/.well-known/openid-configuration")).json()
    assert oauth["issuer"] == "http://127.0.0.1:8000"
    assert oauth["token_endpoint"] == "http://127.0.0.1:8000/oauth/token"
    assert oauth["code_challenge_methods_supported"] == ["S256"]
    assert set(oauth["grant_types_supported"]) == {
        "authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"}
    assert {"tasks:read", "tasks:write", "documents:read", "documents:write", "profile", "admin"} <= set(
        oauth["scopes_supported"])
    assert openid["userinfo_endpoint"] == "http://127.0.0.1:8000/oauth/userinfo"
    assert openid["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]
    assert oauth["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]
    assert {key: openid[key] for key in oauth} == oauth


def test_discovery_documents_are_valid_for_a_production_issuer() -> None:
    # authlib's own validators (they insist on https, as production must).
    AuthorizationServerMetadata(authorization_server_metadata("https://tandem.example.com")).validate()
    openid = OpenIDProviderMetadata(openid_configuration("https://tandem.example.com"))
    for name in dir(openid):  # RS256 included, as OpenID Connect Discovery requires
        if name.startswith("validate_"):
            getattr(openid, name)()


@sqlite_only
async def test_rotation_signs_with_the_new_key_and_keeps_the_old_one_published(
    settings: Settings, tmp_path: Path, alice: User
) -> None:
    keys_dir = tmp_path / "rotating-keys"
    rotating = settings.model_copy(update={"keys_dir": keys_dir})
    async with serve(rotating) as http:
        before = [key for key in (await http.get("/.well-known/jwks.json")).json()["keys"] if key["alg"] == "ES256"]
        from app.main import token_service

        old_token = token_service(rotating).issue_access_token(str(alice.id), {"profile"})
        new_key = add_key(keys_dir)  # what `tandem keys rotate` does, while the server runs
        after = (await http.get("/.well-known/jwks.json")).json()["keys"]
        assert [key["kid"] for key in after if key["alg"] == "ES256"] == [before[0]["kid"], new_key.kid]
        assert [key["kty"] for key in after if key["alg"] == "RS256"] == ["RSA"]  # ID tokens of RS256 clients
        assert (await viewer_status(http, old_token))[0] == 200  # old tokens still verify

        new_token = token_service(rotating).issue_access_token(str(alice.id), {"profile"})
        assert jwt.get_unverified_header(new_token)["kid"] == new_key.kid
        assert (await viewer_status(http, new_token))[0] == 200


def test_retired_keys_leave_only_after_their_tokens_expire(tmp_path: Path) -> None:
    first, second, third = (add_key(tmp_path) for _ in range(3))
    now = time.time()
    # The second key was created an hour ago (so the first retired then), the third just now.
    os.utime(tmp_path / f"{second.kid}.pem", (now - 3600, now - 3600))
    retired = retire_keys(tmp_path, older_than_seconds=1800 + 30)
    assert retired == [first.kid]
    assert sorted(path.stem for path in tmp_path.glob("*.pem")) == [second.kid, third.kid]
    assert retire_keys(tmp_path, older_than_seconds=1800 + 30) == []  # the newest key always stays


# --- forged tokens at the OAuth endpoints -------------------------------------------------------------


@sqlite_only
@pytest.mark.parametrize("forgery", FORGERIES, ids=FORGERY_IDS)
async def test_forged_tokens_are_refused_at_userinfo_and_inactive_at_introspection(
    forgery: Forgery, http: httpx.AsyncClient, app: Starlette, alice: User, oauth_client: OAuthClientFactory,
    resource_server: RegisteredClient,
) -> None:
    token = forgery(Forger(app.state.tokens, str(alice.id)))
    userinfo = await http.get(USERINFO, headers={"Authorization": f"Bearer {token}"})
    assert userinfo.status_code == 401
    assert userinfo.headers["www-authenticate"].startswith('Bearer realm="tandem", error="invalid_token"')
    introspection = await oauth_client(resource_server).introspect_token(INTROSPECT, token=token)
    assert without_cost(introspection.json()) == {"active": False}


@sqlite_only
async def test_userinfo_without_a_token_is_a_bare_challenge(http: httpx.AsyncClient) -> None:
    response = await http.get(USERINFO)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="tandem"'


@sqlite_only
async def test_an_expired_access_token_is_refused(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User,
    app: Starlette,
) -> None:
    token = await code_flow_tokens(http, oauth_client, web_app)
    claims = jwt.decode(token["access_token"], options={"verify_signature": False})
    # The same claims, re-issued by the server with its own key an hour in the past.
    expired = Forger(app.state.tokens, claims["sub"]).signed({**claims, "iat": claims["iat"] - 3600,
                                                               "nbf": claims["iat"] - 3600,
                                                               "exp": claims["iat"] - 600})
    status, body = await viewer_status(http, expired)
    assert status == 401 and body["errors"][0]["message"] == "The access token has expired."
