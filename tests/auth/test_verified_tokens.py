"""Remembered token verifications (auth/tokens.py) never outlive what a fresh verification would say.

A token that verified once is not parsed and checked again on its next use, but its expiry and its
signing key are; revocation is checked on every request by the caller (see
tests/oauth/test_refresh_and_revocation.py: a used, then revoked token stops working at once).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from auth.keys import KeyStore, add_key
from auth.tokens import LEEWAY_SECONDS, InvalidToken, TokenService

ISSUER = "https://tandem.test"
AUDIENCE = "tandem"


def _service(directory: Path) -> TokenService:
    return TokenService(KeyStore.load_or_create(directory), issuer=ISSUER, audience=AUDIENCE, ttl_seconds=900)


def test_a_remembered_token_still_expires(tmp_path: Path) -> None:
    service = _service(tmp_path / "keys")
    # Expired a moment short of the leeway: good now, expired in a second.
    token = service.issue_access_token("1", {"profile"}, ttl_seconds=-(LEEWAY_SECONDS - 1))
    assert service.verify(token).subject == "1"
    assert service.verify(token).subject == "1"  # remembered
    time.sleep(1.2)
    with pytest.raises(InvalidToken, match="expired"):
        service.verify(token)
    with pytest.raises(InvalidToken, match="expired"):
        service.verify(token)  # and forgotten: a full verification says the same


def test_a_remembered_token_stops_with_its_key(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    service = _service(directory)
    old_kid = service.keys.signing_key.kid
    token = service.issue_access_token("1", {"profile"})
    assert service.verify(token).subject == "1"

    add_key(directory)
    (directory / f"{old_kid}.pem").unlink()  # an operator deletes a compromised key
    service.keys.refresh()
    with pytest.raises(InvalidToken, match="unknown key"):
        service.verify(token)


def test_other_audiences_are_verified_in_full(tmp_path: Path) -> None:
    service = _service(tmp_path / "keys")
    token = service.issue_access_token("1", {"profile"}, audience="reports")
    with pytest.raises(InvalidToken):
        service.verify(token)  # not for our API, remembered or not
    assert service.verify(token, audiences=["reports"]).subject == "1"
    with pytest.raises(InvalidToken):
        service.verify(token)
