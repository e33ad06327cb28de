"""Access tokens under attack: every forgery is refused with 401 UNAUTHENTICATED, never served as anonymous.

Forged tokens are built here with pyjwt and cryptography, the way an attacker would build them, and
sent as real requests to /graphql; the claim checks are also exercised on `TokenService.verify`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from sqlalchemy import delete
from starlette.applications import Starlette

from app.main import token_service
from app.settings import Settings
from auth.keys import ALGORITHM, KeyStore, add_key
from auth.tokens import LEEWAY_SECONDS, InvalidToken, TokenService
from db.engine import Sessions
from db.models import User
from tests.conftest import GRAPHQL_RESPONSE, global_id, serve, without_cost
from tests.factories import make_user

VIEWER = "{ viewer { id } }"
ISSUER = "https://tandem.test"
AUDIENCE = "tandem"
WELL_PAST = 10 * LEEWAY_SECONDS  # far outside the clock-skew leeway


# --- building tokens the way an attacker would ----------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64_json(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


@dataclass(frozen=True)
class Forger:
    """Knows what an attacker may know: the issuer, the audience, the public keys, a user id."""

    tokens: TokenService
    subject: str

    @property
    def kid(self) -> str:
        return self.tokens.keys.signing_key.kid

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """Claims a genuine token would carry; an override of `None` removes the claim."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.tokens.issuer, "sub": self.subject, "aud": self.tokens.audience,
            "iat": now, "nbf": now, "exp": now + 600, "jti": "forged-jti",
            "client_id": "web", "scope": "profile tasks:read",
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def signed(self, claims: dict[str, Any], **headers: Any) -> str:
        """Signed with the server's real key: stands for a token the server issued itself."""
        key = self.tokens.keys.signing_key.private_key
        return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": self.kid, "typ": "at+jwt", **headers})

    def genuine(self) -> str:
        return self.tokens.issue_access_token(self.subject, {"profile", "tasks:read"}, client_id="web")

    def public_pem(self) -> bytes:
        return self.tokens.keys.signing_key.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


# Each forgery: (Forger) -> token. Used both over HTTP and directly on `TokenService.verify`.
Forgery = Callable[[Forger], str]


def _expired(f: Forger) -> str:
    now = int(time.time())
    return f.signed(f.claims(iat=now - 3600, nbf=now - 3600, exp=now - WELL_PAST))


def _not_yet_valid(f: Forger) -> str:
    return f.signed(f.claims(nbf=int(time.time()) + WELL_PAST))


def _issued_in_the_future(f: Forger) -> str:
    now = int(time.time())
    return f.signed(f.claims(iat=now + WELL_PAST, nbf=None))


def _wrong_audience(f: Forger) -> str:
    return f.signed(f.claims(aud="another-api"))


def _wrong_issuer(f: Forger) -> str:
    return f.signed(f.claims(iss="https://evil.example"))


def _missing(claim: str) -> Forgery:
    def forge(f: Forger) -> str:
        return f.signed(f.claims(**{claim: None}))

    forge.__name__ = f"_missing_{claim}"
    return forge


def _signature_tampered(f: Forger) -> str:
    header, payload, signature = f.genuine().split(".")
    # A character in the middle: the last one may only carry base64 padding bits.
    i = len(signature) // 2
    flipped = "A" if signature[i] != "A" else "B"
    return ".".join([header, payload, signature[:i] + flipped + signature[i + 1:]])


def _payload_tampered(f: Forger) -> str:
    header, payload, signature = f.genuine().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = str(int(claims["sub"]) + 1)  # somebody else
    claims["scope"] = "profile tasks:read tasks:write documents:read documents:write"
    return ".".join([header, _b64_json(claims), signature])


def _alg_none(f: Forger) -> str:
    header = {"alg": "none", "typ": "at+jwt", "kid": f.kid}
    return f"{_b64_json(header)}.{_b64_json(f.claims())}."


def _hs256_with_public_key(f: Forger) -> str:
    # Algorithm confusion: the public key is public, so an HMAC "signed" with it is forgeable by anyone.
    # pyjwt refuses to do this (rightly), so the HMAC is computed by hand.
    header = {"alg": "HS256", "typ": "at+jwt", "kid": f.kid}
    signing_input = f"{_b64_json(header)}.{_b64_json(f.claims())}"
    mac = hmac.new(f.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _other_key_same_kid(f: Forger) -> str:
    attacker = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(f.claims(), attacker, algorithm=ALGORITHM, headers={"kid": f.kid, "typ": "at+jwt"})


def _other_key_embedded_as_jwk(f: Forger) -> str:
    # The attacker ships their own public key in the header; a verifier must never trust it.
    attacker = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(ECAlgorithm.to_jwk(attacker.public_key()))
    headers = {"kid": f.kid, "typ": "at+jwt", "jwk": jwk}
    return jwt.encode(f.claims(), attacker, algorithm=ALGORITHM, headers=headers)


def _unknown_kid(f: Forger) -> str:
    # Signed with the real key: the server must look the kid up, not try every key it has.
    return f.signed(f.claims(), kid="20990101T000000-deadbeef")


def _no_kid(f: Forger) -> str:
    key = f.tokens.keys.signing_key.private_key
    return jwt.encode(f.claims(), key, algorithm=ALGORITHM, headers={"typ": "at+jwt"})


def _not_a_jwt(f: Forger) -> str:
    return "not.a.jwt"


FORGERIES: list[Forgery] = [
    _expired, _not_yet_valid, _issued_in_the_future, _wrong_audience, _wrong_issuer,
    _missing("sub"), _missing("exp"), _missing("jti"), _missing("iat"), _missing("iss"), _missing("aud"),
    _signature_tampered, _payload_tampered, _alg_none, _hs256_with_public_key,
    _other_key_same_kid, _other_key_embedded_as_jwk, _unknown_kid, _no_kid, _not_a_jwt,
]
FORGERY_IDS = [forgery.__name__.lstrip("_") for forgery in FORGERIES]


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def service(tmp_path: Path) -> TokenService:
    """A token service of its own (no database), for checks on `verify` alone."""
    return TokenService(KeyStore.load_or_create(tmp_path / "keys"), issuer=ISSUER, audience=AUDIENCE, ttl_seconds=900)


async def _ask_viewer(client: httpx.AsyncClient, authorization: str) -> httpx.Response:
    return await client.post(
        "/graphql", json={"query": VIEWER},
        headers={"Accept": GRAPHQL_RESPONSE, "Authorization": authorization},
    )


def _assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert "data" not in body  # nothing executed: not even as an anonymous caller
    assert [error["extensions"]["code"] for error in body["errors"]] == ["UNAUTHENTICATED"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# --- attacks over HTTP ------------------------------------------------------------------------------


@pytest.mark.parametrize("forge", FORGERIES, ids=FORGERY_IDS)
async def test_forged_token_is_refused(forge: Forgery, app: Starlette, client: httpx.AsyncClient, alice: User) -> None:
    token = forge(Forger(app.state.tokens, str(alice.id)))
    _assert_refused(await _ask_viewer(client, f"Bearer {token}"))


async def test_token_of_deleted_user_is_refused(
    app: Starlette, client: httpx.AsyncClient, sessions: Sessions, token_for: Callable[..., str]
) -> None:
    user = await make_user(sessions, "Gone")
    token = token_for(user)
    async with sessions.begin() as session:
        await session.execute(delete(User).where(User.id == user.id))
    _assert_refused(await _ask_viewer(client, f"Bearer {token}"))


@pytest.mark.parametrize("subject", ["alice", "", "1.0", "-1", " 1", "0x1"])
async def test_token_whose_sub_is_not_a_user_id_is_refused(
    subject: str, app: Starlette, client: httpx.AsyncClient, alice: User
) -> None:
    # Validly signed (as for a service client): the signature is fine, the subject names no user.
    token = app.state.tokens.issue_access_token(subject, {"profile"})
    _assert_refused(await _ask_viewer(client, f"Bearer {token}"))


ARABIC_INDIC_DIGITS = "".join(chr(0x0660 + n) for n in range(10))


@pytest.mark.parametrize("digits", ["\u00b2", ARABIC_INDIC_DIGITS], ids=["superscript-two", "arabic-indic-alice"])
async def test_token_whose_sub_is_a_unicode_digit_is_refused(
    digits: str, app: Starlette, client: httpx.AsyncClient, alice: User
) -> None:
    # str.isdigit() accepts both: "²" once crashed int() (HTTP 500), Alice's id in Arabic-Indic digits
    # once signed in as Alice.
    subject = str(alice.id).translate(str.maketrans("0123456789", digits)) if len(digits) == 10 else digits
    token = app.state.tokens.issue_access_token(subject, {"profile"})
    _assert_refused(await _ask_viewer(client, f"Bearer {token}"))


@pytest.mark.parametrize(
    "authorization",
    ["Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer   ", "Token abc", "bearer-abc"],
)
async def test_other_authorization_schemes_are_refused(
    authorization: str, client: httpx.AsyncClient, alice: User
) -> None:
    _assert_refused(await _ask_viewer(client, authorization))


@pytest.mark.parametrize("typ", ["JWT", None], ids=["typ-JWT", "no-typ"])
async def test_signed_jwt_of_another_type_is_refused(
    typ: str | None, app: Starlette, client: httpx.AsyncClient, alice: User
) -> None:
    # RFC 9068 section 4: an ID token (say) signed with the same key is no access token.
    forger = Forger(app.state.tokens, str(alice.id))
    token = forger.signed(forger.claims(), typ=typ)
    _assert_refused(await _ask_viewer(client, f"Bearer {token}"))


async def test_media_type_form_of_typ_is_accepted(app: Starlette, client: httpx.AsyncClient, alice: User) -> None:
    forger = Forger(app.state.tokens, str(alice.id))
    token = forger.signed(forger.claims(), typ="application/at+jwt")
    response = await _ask_viewer(client, f"Bearer {token}")
    assert without_cost(response.json()) == {"data": {"viewer": {"id": global_id("User", alice.id)}}}


# --- the same attacks on TokenService.verify --------------------------------------------------------


@pytest.mark.parametrize("forge", FORGERIES, ids=FORGERY_IDS)
def test_verify_raises_on_forgery(forge: Forgery, service: TokenService) -> None:
    with pytest.raises(InvalidToken):
        service.verify(forge(Forger(service, "1")))


def test_verify_tolerates_clock_skew_within_leeway(service: TokenService) -> None:
    forger = Forger(service, "1")
    now = int(time.time())
    token = forger.signed(forger.claims(exp=now - LEEWAY_SECONDS // 2, nbf=now + LEEWAY_SECONDS // 2))
    assert service.verify(token).subject == "1"


def test_verify_refuses_wrong_audience_even_when_it_is_in_a_list(service: TokenService) -> None:
    forger = Forger(service, "1")
    with pytest.raises(InvalidToken):
        service.verify(forger.signed(forger.claims(aud=["another-api", "yet-another"])))


# --- the good path ------------------------------------------------------------------------------


async def test_fresh_token_yields_viewer(client: httpx.AsyncClient, token_for: Callable[..., str], alice: User) -> None:
    response = await _ask_viewer(client, f"Bearer {token_for(alice)}")
    assert response.status_code == 200
    assert without_cost(response.json()) == {"data": {"viewer": {"id": global_id("User", alice.id)}}}


async def test_scheme_is_case_insensitive(
    client: httpx.AsyncClient, token_for: Callable[..., str], alice: User
) -> None:
    response = await _ask_viewer(client, f"bearer {token_for(alice)}")
    assert response.json()["data"]["viewer"] == {"id": global_id("User", alice.id)}


async def test_issued_token_follows_rfc_9068(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, token_for: Callable[..., str], alice: User
) -> None:
    token = token_for(alice, {"tasks:read", "profile"}, client_id="web")
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES256", "typ": "at+jwt", "kid": app.state.tokens.keys.signing_key.kid}
    # Verified against what the server publishes, as another resource server would.
    jwks = (await client.get("/.well-known/jwks.json")).json()
    public_key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    claims = jwt.decode(token, public_key, algorithms=["ES256"], audience=settings.audience, issuer=settings.issuer)
    assert {"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"} <= claims.keys()
    assert claims["sub"] == str(alice.id)
    assert claims["client_id"] == "web"
    assert claims["scope"].split() == ["profile", "tasks:read"]
    assert claims["exp"] - claims["iat"] == settings.access_token_ttl_seconds
    assert len(claims["jti"]) >= 16
    assert token_for(alice) != token_for(alice)  # a fresh jti every time


def test_jwks_never_publishes_private_material(service: TokenService) -> None:
    (jwk,) = service.keys.jwks()["keys"]
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256"
    assert "d" not in jwk
    assert jwk["kid"] == service.keys.signing_key.kid and jwk["alg"] == "ES256" and jwk["use"] == "sig"


# --- keys and rotation ----------------------------------------------------------------------------


def _pems(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.pem"))


def test_first_start_creates_one_key_and_second_start_reuses_it(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    first = KeyStore.load_or_create(directory)
    (pem,) = _pems(directory)
    assert pem.stem == first.signing_key.kid
    assert stat.S_IMODE(os.stat(pem).st_mode) == 0o600

    second = KeyStore.load_or_create(directory)
    assert _pems(directory) == [pem]
    assert second.signing_key.kid == first.signing_key.kid
    assert [k["kid"] for k in second.jwks()["keys"]] == [first.signing_key.kid]


def test_added_key_is_owner_only_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old_umask = os.umask(0)
    try:
        key = add_key(tmp_path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(tmp_path / f"{key.kid}.pem").st_mode) == 0o600


def test_rotation_newest_key_signs_and_old_tokens_still_verify(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    before = TokenService(KeyStore.load_or_create(directory), issuer=ISSUER, audience=AUDIENCE, ttl_seconds=900)
    old_kid = before.keys.signing_key.kid
    old_token = before.issue_access_token("1", {"profile"})

    new = add_key(directory)
    after = TokenService(KeyStore.load_or_create(directory), issuer=ISSUER, audience=AUDIENCE, ttl_seconds=900)

    assert new.kid != old_kid
    assert after.keys.signing_key.kid == new.kid
    assert jwt.get_unverified_header(after.issue_access_token("1", {"profile"}))["kid"] == new.kid
    assert after.verify(old_token).subject == "1"
    assert {key["kid"] for key in after.keys.jwks()["keys"]} == {old_kid, new.kid}


async def test_rotation_through_the_running_app(settings: Settings, tmp_path: Path, alice: User) -> None:
    rotating = settings.model_copy(update={"keys_dir": tmp_path / "rotating-keys"})
    before = token_service(rotating)  # what create_app builds: the first start creates the first key
    old_kid = before.keys.signing_key.kid
    old_token = before.issue_access_token(str(alice.id), {"profile"})

    new = add_key(rotating.keys_dir)
    assert token_service(rotating).keys.signing_key.kid == new.kid  # a restart signs with the new key

    async with serve(rotating) as http:  # the restarted app
        response = await _ask_viewer(http, f"Bearer {old_token}")
        jwks = (await http.get("/.well-known/jwks.json")).json()
    assert without_cost(response.json()) == {"data": {"viewer": {"id": global_id("User", alice.id)}}}
    assert {key["kid"] for key in jwks["keys"] if key["alg"] == "ES256"} == {old_kid, new.kid}


def test_newest_key_signs_even_when_rotated_within_one_second(tmp_path: Path) -> None:
    KeyStore.load_or_create(tmp_path)
    # Kids once carried a timestamp to the second plus random hex: among keys made within one second,
    # the newest signed only by chance. Twenty quick rotations would have caught that almost surely.
    for _ in range(20):
        newest = add_key(tmp_path)
        assert KeyStore.load_or_create(tmp_path).signing_key.kid == newest.kid


def _plant_key(directory: Path, kid: str) -> None:
    """A key file as another version, or a host with a clock ahead of ours, may have left it."""
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{kid}.pem"
    path.write_bytes(pem)
    path.chmod(0o600)


@pytest.mark.parametrize(
    "existing_kid",
    ["20991231T235959999999-deadbeef", "20991231T235959-deadbeef", "some-other-tool"],
    ids=["timestamp-from-a-clock-ahead", "timestamp-to-the-second", "foreign"],
)
def test_a_kid_without_our_sequence_never_outranks_a_new_key(existing_kid: str, tmp_path: Path) -> None:
    _plant_key(tmp_path, existing_kid)
    new = add_key(tmp_path)
    assert new.kid.startswith("000001-")
    assert KeyStore.load_or_create(tmp_path).signing_key.kid == new.kid


def test_key_order_follows_the_sequence_not_the_string(tmp_path: Path) -> None:
    _plant_key(tmp_path, "000009-ffffffff")
    new = add_key(tmp_path)
    assert new.kid.startswith("000010-")  # "000010-…" sorts after "000009-…" as a number and a string
    _plant_key(tmp_path, "999999-00000000")
    newer = add_key(tmp_path)
    assert newer.kid.startswith("1000000-")  # past six digits the string order breaks; the number's holds
    assert KeyStore.load_or_create(tmp_path).signing_key.kid == newer.kid
