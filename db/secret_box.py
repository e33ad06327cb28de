"""Recoverable secrets at rest (webhook signing secrets): AES-256-GCM under `TANDEM_SECRET_KEY`.

Signing needs a secret itself, so it cannot be hashed; stored encrypted, a copy of the database (a
backup, a replica, a leaked dump) signs nothing without the key, which lives in the environment.

`TANDEM_SECRET_KEY` is a comma-separated list of base64 keys of 32 bytes, newest first: the newest
encrypts, every one decrypts, so a key is rotated by putting a new one in front, re-sealing the rows
(`tandem secrets reseal`), then dropping the old one. A stored value reads
`enc1:<key id>:<base64url(nonce + ciphertext)>`; the key id (a hash prefix of the key) picks the key,
and the column's name is bound in as associated data, so a value moved to another column fails.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "enc1:"
KEY_BYTES = 32


class SecretKeyError(ValueError):
    """A key in TANDEM_SECRET_KEY is not 32 bytes of base64; the message says which."""


class UndecryptableSecret(Exception):
    """Sealed under a key no longer configured, or altered."""


def parse_keys(value: str) -> list[bytes]:
    """`TANDEM_SECRET_KEY`'s keys, newest first."""
    keys = []
    for position, text in enumerate((part.strip() for part in value.split(",")), start=1):
        if not text:
            continue
        try:
            key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise SecretKeyError(f"key {position} of TANDEM_SECRET_KEY is not base64") from None
        if len(key) != KEY_BYTES:
            raise SecretKeyError(f"key {position} of TANDEM_SECRET_KEY has {len(key)} bytes; it needs {KEY_BYTES}")
        keys.append(key)
    if not keys:
        raise SecretKeyError("TANDEM_SECRET_KEY holds no key")
    return keys


def new_key() -> str:
    """A fresh key, as TANDEM_SECRET_KEY takes it."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode().rstrip("=")


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"tandem secret key id\0" + key).hexdigest()[:8]


class SecretBox:
    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise SecretKeyError("a secret box needs at least one key")
        self._keys = {_key_id(key): AESGCM(key) for key in keys}
        self._newest = _key_id(keys[0])

    def seal(self, plaintext: str, *, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._keys[self._newest].encrypt(nonce, plaintext.encode(), context.encode())
        return f"{PREFIX}{self._newest}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, stored: str, *, context: str) -> str:
        """The plaintext; a value stored before encryption was configured is returned as it is."""
        if not stored.startswith(PREFIX):
            return stored
        key_id, _, payload = stored.removeprefix(PREFIX).partition(":")
        cipher = self._keys.get(key_id)
        if cipher is None:
            raise UndecryptableSecret(f"sealed under key {key_id}, which TANDEM_SECRET_KEY no longer holds")
        try:
            raw = base64.urlsafe_b64decode(payload)
            return cipher.decrypt(raw[:12], raw[12:], context.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise UndecryptableSecret("the sealed value was altered or belongs elsewhere") from None

    def is_current(self, stored: str) -> bool:
        """Sealed under the newest key (nothing to re-seal)."""
        return stored.startswith(f"{PREFIX}{self._newest}:")
