"""Authorization code + PKCE, end to end with authlib's OAuth client, and every way it must refuse.

The browser side (sign-in and consent forms) is plain HTTP with a cookie jar: the pages need no
JavaScript, so what works here works in any browser.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlencode

import httpx
import jwt
import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import select, update
from starlette.applications import Starlette

from db.engine import Sessions
from db.models import User, utcnow
from db.oauth import OAuthAuthorizationCode
from tests.factories import make_user
from tests.oauth.conftest import (
    AUTHORIZE,
    ISSUER,
    REDIRECT_URI,
    TOKEN,
    USERINFO,
    RegisteredClient,
    approve,
    code_flow_tokens,
    csrf_of,
    query_of,
    sqlite_only,
    start_code_flow,
    viewer_status,
)

OAuthClientFactory = Callable[..., AsyncOAuth2Client]


def _pkce_client(oauth_client: OAuthClientFactory, registered: RegisteredClient, **kwargs: object) -> AsyncOAuth2Client:
    return oauth_client(registered, redirect_uri=REDIRECT_URI, code_challenge_method="S256", **kwargs)


async def test_code_flow_issues_rfc9068_tokens_and_an_id_token(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User
) -> None:
    oauth = _pkce_client(oauth_client, web_app)
    flow = start_code_flow(oauth, "openid profile email tasks:read", nonce="n-0S6_WzA2Mj")
    redirect = await approve(http, flow.url)

    assert redirect.status_code == 302
    location = redirect.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    params = query_of(location)
    assert params["state"] == flow.state  # state round-trips
    assert params["iss"] == ISSUER  # RFC 9207

    token = await oauth.fetch_token(TOKEN, authorization_response=location, code_verifier=flow.verifier)
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 900
    assert token["scope"] == "email openid profile tasks:read"
    assert token["refresh_token"]

    jwks = jwt.PyJWKSet.from_dict((await http.get("/.well-known/jwks.json")).json())
    header = jwt.get_unverified_header(token["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    claims = jwt.decode(token["access_token"], jwks[header["kid"]].key, algorithms=["ES256"], audience="tandem",
                        issuer=ISSUER)
    assert claims["sub"] == str(person.id)
    assert claims["client_id"] == web_app.client_id
    assert claims["scope"] == "email openid profile tasks:read"
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert {"jti", "sid"} <= claims.keys()

    id_header = jwt.get_unverified_header(token["id_token"])
    id_claims = jwt.decode(token["id_token"], jwks[id_header["kid"]].key, algorithms=["ES256"],
                           audience=web_app.client_id, issuer=ISSUER)
    assert id_claims["sub"] == str(person.id)
    assert id_claims["nonce"] == "n-0S6_WzA2Mj"
    assert id_claims["name"] == "Pat" and id_claims["email"] == "pat@example.test"

    assert await viewer_status(http, token["access_token"]) == (200, {"data": {"viewer": {"name": "Pat"}}})
    userinfo = (await oauth.get(USERINFO)).json()
    assert userinfo == {"sub": str(person.id), "name": "Pat", "email": "pat@example.test",
                        "email_verified": False, "updated_at": userinfo["updated_at"]}


@sqlite_only
async def test_an_id_token_is_not_an_access_token(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User
) -> None:
    token = await code_flow_tokens(http, oauth_client, web_app)
    status, body = await viewer_status(http, token["id_token"])
    assert status == 401 and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@sqlite_only
async def test_without_openid_there_is_no_id_token_and_no_userinfo(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User
) -> None:
    token = await code_flow_tokens(http, oauth_client, web_app, scope="tasks:read")
    assert "id_token" not in token
    response = await http.get(USERINFO, headers={"Authorization": f"Bearer {token['access_token']}"})
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


@sqlite_only
async def test_unknown_scopes_are_dropped_and_admin_needs_an_admin(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User
) -> None:
    # The client is not registered for documents:write, and Pat is no admin.
    token = await code_flow_tokens(http, oauth_client, web_app, scope="tasks:read documents:write admin")
    assert token["scope"] == "tasks:read"


# --- the authorization request ------------------------------------------------------------------------


@pytest.mark.parametrize("redirect_uri", [
    "https://evil.example.test/callback",
    REDIRECT_URI + "/",
    REDIRECT_URI + "?next=/",
    REDIRECT_URI.replace("https", "http"),
], ids=["other-host", "trailing-slash", "extra-query", "http"])
@sqlite_only
async def test_a_redirect_uri_must_match_exactly_and_is_never_followed(
    redirect_uri: str, http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient
) -> None:
    oauth = oauth_client(web_app, redirect_uri=redirect_uri, code_challenge_method="S256")
    flow = start_code_flow(oauth)
    response = await http.get(flow.url)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "not valid" in response.text and "Sign in" not in response.text


@sqlite_only
async def test_an_unknown_client_gets_an_error_page(http: httpx.AsyncClient, web_app: RegisteredClient) -> None:
    query = urlencode({"response_type": "code", "client_id": "nobody", "redirect_uri": REDIRECT_URI,
                       "code_challenge": create_s256_code_challenge(generate_token(48)),
                       "code_challenge_method": "S256"})
    response = await http.get(f"{AUTHORIZE}?{query}")
    assert response.status_code == 400 and "location" not in response.headers


async def _authorize_error(http: httpx.AsyncClient, client_id: str, **params: str) -> dict[str, str]:
    query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI,
                       "state": "xyz", "scope": "tasks:read", **params})
    response = await http.get(f"{AUTHORIZE}?{query}")
    assert response.status_code == 302, response.text
    return query_of(response.headers["location"])


@sqlite_only
async def test_pkce_is_required(http: httpx.AsyncClient, web_app: RegisteredClient) -> None:
    error = await _authorize_error(http, web_app.client_id)
    assert error["error"] == "invalid_request" and error["state"] == "xyz"
    assert "code_challenge" in error["error_description"]


@sqlite_only
async def test_plain_pkce_is_refused(http: httpx.AsyncClient, web_app: RegisteredClient) -> None:
    verifier = generate_token(48)
    for method in ({"code_challenge_method": "plain"}, {}):  # no method means plain (RFC 7636 §4.3)
        error = await _authorize_error(http, web_app.client_id, code_challenge=verifier, **method)
        assert error["error"] == "invalid_request"
        assert "S256" in error["error_description"]


@sqlite_only
async def test_denying_consent_returns_access_denied(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User
) -> None:
    flow = start_code_flow(_pkce_client(oauth_client, web_app))
    redirect = await approve(http, flow.url, decision="deny")
    params = query_of(redirect.headers["location"])
    assert (params["error"], params["state"], params["iss"]) == ("access_denied", flow.state, ISSUER)


# --- the token request ------------------------------------------------------------------------------


async def _code(http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient) -> tuple[AsyncOAuth2Client, str, str]:
    oauth = _pkce_client(oauth_client, web_app)
    flow = start_code_flow(oauth)
    redirect = await approve(http, flow.url)
    return oauth, redirect.headers["location"], flow.verifier


async def _token_error(oauth: AsyncOAuth2Client, **kwargs: object) -> OAuthError:
    with pytest.raises(OAuthError) as caught:
        await oauth.fetch_token(TOKEN, **kwargs)
    return caught.value


@sqlite_only
async def test_the_code_verifier_must_match(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User
) -> None:
    oauth, location, verifier = await _code(http, oauth_client, web_app)
    error = await _token_error(oauth, authorization_response=location, code_verifier=generate_token(48))
    assert error.error == "invalid_grant"
    error = await _token_error(oauth, authorization_response=location)
    assert error.error == "invalid_request"  # no verifier at all
    # Failed attempts do not burn the code: the legitimate client still gets its tokens.
    token = await oauth.fetch_token(TOKEN, authorization_response=location, code_verifier=verifier)
    assert token["access_token"]


@sqlite_only
async def test_the_redirect_uri_must_match_the_authorization_request(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User
) -> None:
    oauth, location, verifier = await _code(http, oauth_client, web_app)
    oauth.redirect_uri = "https://app.example.test/other"
    error = await _token_error(oauth, authorization_response=location, code_verifier=verifier)
    assert error.error == "invalid_grant"


async def test_a_reused_code_is_refused_and_revokes_its_tokens(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User
) -> None:
    oauth, location, verifier = await _code(http, oauth_client, web_app)
    first = await oauth.fetch_token(TOKEN, authorization_response=location, code_verifier=verifier)
    assert (await viewer_status(http, first["access_token"]))[0] == 200

    error = await _token_error(oauth, authorization_response=location, code_verifier=verifier)
    assert error.error == "invalid_grant"

    status, body = await viewer_status(http, first["access_token"])
    assert status == 401 and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    with pytest.raises(OAuthError) as caught:
        await oauth.refresh_token(TOKEN, refresh_token=first["refresh_token"])
    assert caught.value.error == "invalid_grant"


async def test_an_expired_code_is_refused(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User,
    sessions: Sessions,
) -> None:
    oauth, location, verifier = await _code(http, oauth_client, web_app)
    async with sessions.begin() as session:
        rows = list(await session.scalars(update(OAuthAuthorizationCode).values(
            expires_at=utcnow() - timedelta(seconds=1)).returning(OAuthAuthorizationCode.expires_at)))
    assert len(rows) == 1
    error = await _token_error(oauth, authorization_response=location, code_verifier=verifier)
    assert error.error == "invalid_grant"


@sqlite_only
async def test_codes_live_at_most_a_minute(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User,
    sessions: Sessions,
) -> None:
    await _code(http, oauth_client, web_app)
    async with sessions() as session:
        row = (await session.scalars(select(OAuthAuthorizationCode))).one()
    assert timedelta(0) < row.expires_at - utcnow() <= timedelta(seconds=60)


@sqlite_only
async def test_a_code_is_bound_to_its_client(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User,
    sessions: Sessions,
) -> None:
    from auth.oauth.data import create_client

    other, _ = await create_client(sessions, name="Other", redirect_uris=[REDIRECT_URI], scope=["tasks:read"],
                                   grant_types=["authorization_code"], confidential=False)
    _, location, verifier = await _code(http, oauth_client, web_app)
    thief = _pkce_client(oauth_client, RegisteredClient(other.client_id, None))
    error = await _token_error(thief, authorization_response=location, code_verifier=verifier)
    assert error.error == "invalid_grant"


# --- the sign-in form ---------------------------------------------------------------------------------


@sqlite_only
async def test_the_sign_in_page_is_a_plain_form_under_a_strict_csp(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient
) -> None:
    page = await http.get(start_code_flow(_pkce_client(oauth_client, web_app)).url)
    assert page.status_code == 200
    assert "<script" not in page.text
    assert 'name="username"' in page.text and 'name="password"' in page.text and 'name="csrf_token"' in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert "script-src" not in page.headers["content-security-policy"]
    cookie = page.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower() and "path=/oauth" in cookie.lower()
    css = await http.get("/oauth/signin.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


@sqlite_only
async def test_a_form_without_the_csrf_token_is_refused(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User
) -> None:
    url = start_code_flow(_pkce_client(oauth_client, web_app)).url
    await http.get(url)
    for csrf in ("", "forged-token"):
        response = await http.post(url, data={"csrf_token": csrf, "action": "login", "username": person.email,
                                              "password": "plum-orbit-canyon-41"})
        assert response.status_code == 400 and "expired" in response.text
        assert "Allow" not in response.text
    # A cross-site form post arrives without our cookie at all: a fresh session, the same refusal.
    http.cookies.clear()
    response = await http.post(url, data={"csrf_token": "x", "action": "consent", "decision": "allow"})
    assert response.status_code == 400 and "location" not in response.headers


@sqlite_only
async def test_a_wrong_password_is_refused(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User
) -> None:
    url = start_code_flow(_pkce_client(oauth_client, web_app)).url
    for email, password in ((person.email, "wrong-password"), ("nobody@example.test", "wrong-password")):
        page = await http.get(url)
        response = await http.post(url, data={"csrf_token": csrf_of(page), "action": "login", "username": email,
                                              "password": password})
        assert response.status_code == 400 and "not right" in response.text and "Allow" not in response.text


async def _failed_logins(http: httpx.AsyncClient, url: str, email: str, count: int) -> httpx.Response:
    response = await http.get(url)
    for _ in range(count):
        response = await http.post(url, data={"csrf_token": csrf_of(response), "action": "login", "username": email,
                                              "password": "wrong-password"})
    return response


@sqlite_only
async def test_failed_sign_ins_are_limited_per_account(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User
) -> None:
    url = start_code_flow(_pkce_client(oauth_client, web_app)).url
    last = await _failed_logins(http, url, person.email, 5)
    assert last.status_code == 400
    blocked = await http.post(url, data={"csrf_token": csrf_of(last), "action": "login", "username": person.email,
                                         "password": "plum-orbit-canyon-41"})  # even the right password
    assert blocked.status_code == 429 and "Too many" in blocked.text
    assert 0 < int(blocked.headers["retry-after"]) <= 15 * 60


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_failed_sign_ins_are_limited_per_ip(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User,
    sessions: Sessions,
) -> None:
    url = start_code_flow(_pkce_client(oauth_client, web_app)).url
    for n in range(4):  # 4 accounts x 5 failures = the IP's 20
        await _failed_logins(http, url, f"guess{n}@example.test", 5)
    page = await http.get(url)
    blocked = await http.post(url, data={"csrf_token": csrf_of(page), "action": "login", "username": person.email,
                                         "password": "plum-orbit-canyon-41"})
    assert blocked.status_code == 429


@sqlite_only
async def test_an_admin_can_grant_admin(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, sessions: Sessions
) -> None:
    from auth.oauth.data import create_client
    from auth.passwords import hash_password
    from resolvers.users import create_user

    await create_user(sessions, email="root@example.test", name="Root", password_hash=hash_password("plum-orbit-canyon-41"),
                      admin=True)
    client, _ = await create_client(sessions, name="Admin UI", redirect_uris=[REDIRECT_URI],
                                    scope=["profile", "admin"], grant_types=["authorization_code"], confidential=False)
    oauth = _pkce_client(oauth_client, RegisteredClient(client.client_id, None))
    flow = start_code_flow(oauth, "profile admin")
    redirect = await approve(http, flow.url, email="root@example.test")
    token = await oauth.fetch_token(TOKEN, authorization_response=redirect.headers["location"],
                                    code_verifier=flow.verifier)
    assert token["scope"] == "admin profile"
    assert "refresh_token" not in token  # the client is not registered for refresh tokens


@sqlite_only
async def test_signed_in_browsers_skip_the_password(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient, person: User,
    sessions: Sessions,
) -> None:
    await approve(http, start_code_flow(_pkce_client(oauth_client, web_app)).url)
    second = await http.get(start_code_flow(_pkce_client(oauth_client, web_app)).url)
    assert "Allow" in second.text and 'name="password"' not in second.text
    assert await make_user(sessions)  # unrelated users change nothing


# --- malformed requests: refused, never a 500 -----------------------------------------------------------


@sqlite_only
async def test_malformed_protocol_parameters_are_refused(http: httpx.AsyncClient, web_app: RegisteredClient) -> None:
    import base64

    for response_type in ('code"\\', "code\x00", "cöde"):
        page = await http.get(AUTHORIZE, params={"response_type": response_type, "client_id": web_app.client_id})
        assert page.status_code == 400 and "malformed" in page.text
    token = await http.post(TOKEN, data={"grant_type": "refresh_token", "refresh_token": "é"})
    assert token.status_code == 400 and token.json()["error"] == "invalid_request"
    not_utf8 = base64.b64encode(b"\xff\xfe:\xfd").decode()
    basic = await http.post(TOKEN, data={"grant_type": "client_credentials"},
                            headers={"Authorization": f"Basic {not_utf8}"})
    assert basic.status_code in (400, 401) and basic.json()["error"] == "invalid_client"
    huge = await http.post(TOKEN, content=b"a=" + b"b" * 70_000,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert huge.status_code == 413


async def test_a_nul_in_the_username_is_just_a_failed_sign_in(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, web_app: RegisteredClient
) -> None:
    url = start_code_flow(_pkce_client(oauth_client, web_app)).url
    page = await http.get(url)
    response = await http.post(url, data={"csrf_token": csrf_of(page), "action": "login",
                                          "username": "pat\x00@example.test", "password": "x"})
    assert response.status_code == 400 and "not right" in response.text


@sqlite_only
async def test_a_client_registered_for_rs256_gets_rs256_id_tokens(
    http: httpx.AsyncClient, oauth_client: OAuthClientFactory, person: User, sessions: Sessions
) -> None:
    from auth.oauth.data import create_client

    # What a client using RFC 8414 discovery (not OpenID Connect's) checks before it accepts an ID token.
    metadata = (await http.get("/.well-known/oauth-authorization-server")).json()
    assert metadata["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]
    row, _ = await create_client(sessions, name="Legacy OIDC app", redirect_uris=[REDIRECT_URI], scope=["openid", "profile"],
                                 grant_types=["authorization_code", "refresh_token"], confidential=False,
                                 id_token_alg="RS256")
    oauth = _pkce_client(oauth_client, RegisteredClient(row.client_id, None))
    flow = start_code_flow(oauth, "openid profile")
    redirect = await approve(http, flow.url)
    token = await oauth.fetch_token(TOKEN, authorization_response=redirect.headers["location"],
                                    code_verifier=flow.verifier)
    jwks = jwt.PyJWKSet.from_dict((await http.get("/.well-known/jwks.json")).json())
    header = jwt.get_unverified_header(token["id_token"])
    assert header["alg"] == "RS256" and jwks[header["kid"]].key_type == "RSA"
    claims = jwt.decode(token["id_token"], jwks[header["kid"]].key, algorithms=["RS256"], audience=row.client_id,
                        issuer=ISSUER)
    assert claims["sub"] == str(person.id) and claims["at_hash"]
    # Access tokens stay ES256, and an RSA key never verifies one: an ID token is no access token.
    assert jwt.get_unverified_header(token["access_token"])["alg"] == "ES256"
    assert (await viewer_status(http, token["id_token"]))[0] == 401


@sqlite_only
async def test_an_access_token_signed_with_the_id_token_rsa_key_is_refused(
    http: httpx.AsyncClient, app: Starlette, person: User
) -> None:
    rsa_key = app.state.tokens.id_token_keys.signing_key
    now = int(time.time())
    claims = {"sub": str(person.id), "aud": "tandem", "iss": ISSUER, "exp": now + 60, "iat": now, "nbf": now,
              "jti": "rsa-forgery", "scope": "profile"}
    forged = jwt.encode(claims, rsa_key.private_key, algorithm="RS256", headers={"kid": rsa_key.kid, "typ": "at+jwt"})
    assert (await viewer_status(http, forged))[0] == 401
    # The same claiming ES256: the RSA key's kid is no ES256 key either.
    _, body, signature = forged.split(".")
    header = jwt.utils.base64url_encode(json.dumps({"alg": "ES256", "kid": rsa_key.kid, "typ": "at+jwt"}).encode())
    assert (await viewer_status(http, f"{header.decode()}.{body}.{signature}"))[0] == 401
