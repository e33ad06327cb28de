"""How documents are named: the SHA-256 of their text, and `documentId` values.

Both Apollo's APQ (`extensions.persistedQuery.sha256Hash`) and the GraphQL-over-HTTP persisted
documents appendix (`documentId: "sha256:<hex>"`) name a document by the lower-case hex SHA-256 of
its UTF-8 source text, so one hash identifies a document however the client refers to it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

SHA256_PREFIX = "sha256:"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# The appendix's CustomDocumentIdentifier (letters, digits, - . _ ~), and `x-` prefixed ones.
_CUSTOM_ID = re.compile(r"(x-[A-Za-z0-9._~-]+:)?[A-Za-z0-9._~-]+")
MAX_DOCUMENT_ID_LENGTH = 256


class InvalidDocumentId(ValueError):
    """A `documentId` or hash that cannot name any document; the message says what is wrong."""


def sha256_hex(text: str) -> str:
    # surrogatepass: a lone surrogate (legal in JSON strings) must give a hash, not an exception.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def is_sha256_hex(value: str) -> bool:
    return _SHA256_HEX.fullmatch(value) is not None


def normalize_hash(value: object) -> str:
    """The APQ `sha256Hash`, lower-cased; `InvalidDocumentId` unless it is 64 hex digits."""
    if not isinstance(value, str) or not is_sha256_hex(value.lower()):
        raise InvalidDocumentId("`extensions.persistedQuery.sha256Hash` must be 64 hexadecimal digits.")
    return value.lower()


@dataclass(frozen=True, slots=True)
class DocumentId:
    """A parsed `documentId`: its text, and the SHA-256 it names when it is one (`sha256:` or bare hex)."""

    value: str
    sha256: str | None


def parse_document_id(value: object) -> DocumentId:
    """Parse a request's `documentId`.

    `sha256:<hex>` names a document by content. A bare 64-hex id (what GraphQL Code Generator's
    client preset sends) is looked up both as a manifest key and as a hash. Anything else must be a
    custom identifier as the appendix defines it; other prefixes are reserved and refused.
    """
    if not isinstance(value, str) or not value:
        raise InvalidDocumentId("`documentId` must be a non-empty string.")
    if len(value) > MAX_DOCUMENT_ID_LENGTH:
        raise InvalidDocumentId(f"`documentId` is longer than {MAX_DOCUMENT_ID_LENGTH} characters.")
    if value.startswith(SHA256_PREFIX):
        payload = value.removeprefix(SHA256_PREFIX)
        if not is_sha256_hex(payload):
            raise InvalidDocumentId("A `sha256:` documentId needs 64 lower-case hexadecimal digits.")
        return DocumentId(value, payload)
    if not _CUSTOM_ID.fullmatch(value):
        raise InvalidDocumentId("`documentId` must be `sha256:<hex>` or an id from a trusted manifest.")
    return DocumentId(value, value if is_sha256_hex(value) else None)
