"""Password hashing with argon2id (argon2-cffi's defaults follow RFC 9106's recommendations)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

MIN_LENGTH = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


_DUMMY_HASH: str | None = None


def verify_password_or_dummy(password_hash: str | None, password: str) -> bool:
    """`verify_password`, spending the same time when there is no hash (unknown account or no password)."""
    global _DUMMY_HASH
    if password_hash:
        return verify_password(password_hash, password)
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password("not a password anyone has")
    verify_password(_DUMMY_HASH, password)
    return False
