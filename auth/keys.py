"""Asymmetric signing keys kept as PEM files under `var/keys/`, published as a JWKS.

Access and ID tokens are ES256 (`var/keys/*.pem`); ID tokens for clients registered for RS256 (the
algorithm OpenID Connect requires every provider to offer) use RSA keys kept the same way in
`var/keys/rs256/`. Each algorithm has its own `KeyStore`, so a key of one can never verify the other.

Each key's file name is its `kid`, `<sequence>-<random>`: the highest sequence signs, and older keys
stay published to verify the tokens they signed until those expire. A sequence rather than a
timestamp, so a clock that steps back (or a host whose clock runs ahead) cannot reorder keys.

A running server notices a key added by `tandem keys rotate` (or by another host sharing the
directory) by the directory's modification time, and from then on signs with it; `retire_keys`
deletes keys whose successor has signed for longer than any token lives.
"""

from __future__ import annotations

import itertools
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ALGORITHM = "ES256"
RS256 = "RS256"
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: PrivateKey

    @property
    def algorithm(self) -> str:
        return RS256 if isinstance(self.private_key, rsa.RSAPrivateKey) else ALGORITHM

    def public_jwk(self) -> dict[str, Any]:
        if isinstance(self.private_key, rsa.RSAPrivateKey):
            jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        else:
            jwk = ECAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.algorithm}


class KeyStore:
    def __init__(self, keys: list[SigningKey], directory: Path | None = None, algorithm: str = ALGORITHM) -> None:
        if not keys:
            raise ValueError("a key store needs at least one key")
        self.algorithm = algorithm
        self._use(keys)
        self._directory = directory
        self._seen = _mtime(directory) if directory else 0

    def _use(self, keys: list[SigningKey]) -> None:
        self._keys = sorted(keys, key=lambda key: (sequence_of(key.kid), key.kid))
        self._by_kid = {key.kid: key for key in self._keys}

    @classmethod
    def load_or_create(cls, directory: Path, algorithm: str = ALGORITHM) -> KeyStore:
        """Load every key in `directory`, creating the first one on first start."""
        directory.mkdir(parents=True, exist_ok=True)
        if not list(directory.glob("*.pem")):
            add_key(directory, algorithm)
        return cls(_read_all(directory, algorithm), directory, algorithm)

    def refresh(self) -> None:
        """Reload the keys if the directory changed since they were read (one stat when it did not)."""
        if self._directory is None:
            return
        mtime = _mtime(self._directory)
        if mtime != self._seen:
            try:
                keys = _read_all(self._directory, self.algorithm)
            except (OSError, ValueError):
                return  # mid-change (a key being retired): keep signing with what we have, look again later
            if keys:
                self._use(keys)
            self._seen = mtime

    @property
    def signing_key(self) -> SigningKey:
        self.refresh()
        return self._keys[-1]

    def knows(self, kid: str) -> bool:
        """Whether `kid` is one of the keys in use, without looking at the directory."""
        return kid in self._by_kid

    def public_key(self, kid: str) -> PublicKey | None:
        key = self._by_kid.get(kid)
        if key is None:
            self.refresh()  # signed by a key another host or `keys rotate` just added?
            key = self._by_kid.get(kid)
        return key.private_key.public_key() if key else None

    def jwks(self) -> dict[str, Any]:
        self.refresh()
        return {"keys": [key.public_jwk() for key in self._keys]}


def sequence_of(kid: str) -> int:
    """The kid's sequence number; 0 for a kid not made here (it never outranks ours)."""
    prefix = kid.partition("-")[0]
    return int(prefix) if prefix.isascii() and prefix.isdigit() else 0


def add_key(directory: Path, algorithm: str = ALGORITHM) -> SigningKey:
    """Create a new signing key; running servers sign with it from their next token on."""
    sequence = 1 + max((sequence_of(path.stem) for path in directory.glob("*.pem")), default=0)
    kid = f"{sequence:06d}-{secrets.token_hex(4)}"
    private_key: PrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048) if algorithm == RS256
        else ec.generate_private_key(ec.SECP256R1())
    )
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = directory / f"{kid}.pem"
    partial = directory / f"{kid}.partial"
    # Written with owner-only permissions from the start: a private key is never world-readable.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(pem)
    os.replace(partial, path)  # a running server reading the directory never sees half a key
    return SigningKey(kid, private_key)


def retire_keys(directory: Path, *, older_than_seconds: int) -> list[str]:
    """Delete keys superseded more than `older_than_seconds` ago (every token they signed has expired).

    A key is superseded when its successor is created; the successor's file time says when. The
    newest key is never deleted.
    """
    paths = sorted(directory.glob("*.pem"), key=lambda path: (sequence_of(path.stem), path.stem))
    now = time.time()
    retired = []
    for path, successor in itertools.pairwise(paths):
        if now - successor.stat().st_mtime > older_than_seconds:
            path.unlink()
            retired.append(path.stem)
    return retired


def _mtime(directory: Path) -> int:
    try:
        return directory.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def _read_all(directory: Path, algorithm: str = ALGORITHM) -> list[SigningKey]:
    return [_read(path, algorithm) for path in directory.glob("*.pem")]


def _read(path: Path, algorithm: str = ALGORITHM) -> SigningKey:
    private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    expected = rsa.RSAPrivateKey if algorithm == RS256 else ec.EllipticCurvePrivateKey
    if not isinstance(private_key, expected):
        raise ValueError(f"{path} is not an {'RSA' if algorithm == RS256 else 'EC'} private key")
    return SigningKey(path.stem, private_key)
