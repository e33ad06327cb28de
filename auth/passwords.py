"""Password hashing with argon2id (argon2-cffi's defaults follow RFC 9106's recommendations), and
zxcvbn's estimate of how guessable a new password is.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

_hasher = PasswordHasher()

MIN_LENGTH = 8
MAX_LENGTH = 1024  # argon2 takes any length; this only bounds the work one request can ask for
# zxcvbn's scale: 3 is "safely unguessable: moderate protection from an offline slow-hash attack".
MIN_SCORE = 3


def weakness(password: str, user_inputs: list[str]) -> str | None:
    """Why `password` is too weak (to show to the person choosing it), or None when it is fine."""
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    result = zxcvbn(password, user_inputs=user_inputs)
    if result["score"] >= MIN_SCORE:
        return None
    feedback = result["feedback"]
    advice = " ".join(part for part in [feedback["warning"], *feedback["suggestions"]] if part)
    return f"This password is too easy to guess. {advice}".strip()


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
