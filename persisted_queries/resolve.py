"""Turn a request's `query` / `extensions.persistedQuery` / `documentId` into the text to execute.

This is the one step the HTTP transport calls before executing; it knows the protocols:

- APQ (Apollo Client, urql, Relay-style clients): a hash alone runs a registered or trusted
  document, or answers `PERSISTED_QUERY_NOT_FOUND` so the client retries with hash + query; hash +
  query registers the query once its hash is verified (the transport stores it after it ran).
- `documentId` (GraphQL-over-HTTP persisted documents): `sha256:<hex>` or a manifest's own id.
- A client that must use trusted documents gets `PERSISTED_QUERY_REQUIRED` for anything else, and
  never reaches the APQ store: a registered query is not a trusted one. Such a client is bound to the
  manifests it ships: another app's trusted document is `PERSISTED_QUERY_NOT_ALLOWED` (403).

`PERSISTED_QUERY_NOT_FOUND` keeps Apollo's message, `PersistedQueryNotFound`: older Apollo Clients
match the message, newer ones the code. Legacy `application/json` clients get it with status 200
(Apollo Client retries on either, urql and older links only on a 200 body); clients that accept
`application/graphql-response+json` get 404, and 400 for `PERSISTED_QUERY_REQUIRED`, as the spec's
"not executed" statuses go.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from persisted_queries.apq import APQStore
from persisted_queries.ids import InvalidDocumentId, normalize_hash, parse_document_id, sha256_hex
from persisted_queries.manifest import TrustedOperation
from persisted_queries.trusted import TrustedDocuments

NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
REQUIRED = "PERSISTED_QUERY_REQUIRED"
NOT_ALLOWED = "PERSISTED_QUERY_NOT_ALLOWED"
BAD_USER_INPUT = "BAD_USER_INPUT"
APQ_NOT_FOUND_MESSAGE = "PersistedQueryNotFound"
REQUIRED_MESSAGE = (
    "Only trusted documents may run for this client: send the `documentId` (or APQ hash) of an "
    "operation from its manifest."
)

Source = Literal["text", "apq", "trusted"]


class PersistedQueryError(Exception):
    """The request names no document it may run; `status` for graphql-response+json, `json_status` for JSON."""

    def __init__(self, code: str, message: str, status: int, json_status: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.json_status = json_status


def _bad(message: str) -> PersistedQueryError:
    return PersistedQueryError(BAD_USER_INPUT, message, 400, 400)


def _not_found(message: str = APQ_NOT_FOUND_MESSAGE) -> PersistedQueryError:
    return PersistedQueryError(NOT_FOUND, message, 404, 200)


def _required() -> PersistedQueryError:
    return PersistedQueryError(REQUIRED, REQUIRED_MESSAGE, 400, 200)


def _not_allowed() -> PersistedQueryError:
    return PersistedQueryError(NOT_ALLOWED, "This document is not in a manifest this client ships.", 403, 200)


@dataclass(frozen=True, slots=True)
class ResolvedOperation:
    """What to execute: the text, its SHA-256, and where it came from.

    `register` asks the transport to store the text in the APQ store once it has run (so a query
    that does not even validate is never stored).
    """

    query: str
    sha256: str
    source: Source
    register: bool = False
    trusted: TrustedOperation | None = None


# (store, result): ("trusted" | "apq", "hit" | "miss"), for /metrics.
LookupCounter = Callable[[str, str], None]


class OperationResolver:
    def __init__(
        self, trusted: TrustedDocuments, apq: APQStore, *, max_query_bytes: int, count: LookupCounter | None = None
    ) -> None:
        self.trusted = trusted
        self.apq = apq
        self.max_query_bytes = max_query_bytes
        self._count = count or (lambda store, result: None)

    async def resolve(
        self, params: Mapping[str, Any], *, trusted_only: bool, manifests: frozenset[str] | None = None
    ) -> ResolvedOperation:
        """`params` are the request's, with `query` and `extensions` already type-checked; with
        `trusted_only`, `manifests` (when given) are the only ones whose documents may run."""
        found = await self._resolve(params, trusted_only)
        if trusted_only and manifests is not None and not (self.trusted.manifests_of(found.sha256) & manifests):
            raise _not_allowed()
        return found

    async def _resolve(self, params: Mapping[str, Any], trusted_only: bool) -> ResolvedOperation:
        query: str | None = params.get("query") or None
        extensions = params.get("extensions") or {}
        persisted = extensions.get("persistedQuery")
        sha256 = None if persisted is None else _apq_hash(persisted)
        if params.get("documentId") is not None:
            if query is not None:
                raise _bad("Send either `documentId` or `query`, not both.")
            return await self._by_document_id(params["documentId"], sha256, trusted_only)
        if sha256 is not None:
            if query is None:
                return await self._by_hash(sha256, trusted_only)
            return self._register(sha256, query, trusted_only)
        if query is None or not query.strip():
            raise _bad("The request has no `query`.")
        return self._text(query, trusted_only)

    async def _by_document_id(self, raw: object, sha256: str | None, trusted_only: bool) -> ResolvedOperation:
        try:
            document_id = parse_document_id(raw)
        except InvalidDocumentId as exc:
            raise _bad(str(exc)) from None
        found = self._trusted(self.trusted.by_document_id(document_id))
        if found is None and not trusted_only and document_id.sha256 is not None:
            found = await self._registered(document_id.sha256)
        if found is None:
            raise _not_found(f"No persisted document has the id {document_id.value!r}.")
        if sha256 is not None and sha256 != found.sha256:
            raise _bad("`documentId` and `extensions.persistedQuery` name different documents.")
        return found

    async def _by_hash(self, sha256: str, trusted_only: bool) -> ResolvedOperation:
        found = self._trusted(self.trusted.by_hash(sha256))
        if found is None and not trusted_only:
            found = await self._registered(sha256)
        if found is None:
            raise _not_found()
        return found

    def _register(self, sha256: str, query: str, trusted_only: bool) -> ResolvedOperation:
        if sha256_hex(query) != sha256:
            raise _bad("`extensions.persistedQuery.sha256Hash` is not the SHA-256 of `query`.")
        found = self._trusted(self.trusted.by_hash(sha256))
        if found is not None:
            return found
        if trusted_only:
            raise _required()
        size = len(query.encode())
        if size > self.max_query_bytes:
            raise _bad(f"The query is {size} bytes; persisted queries may be at most {self.max_query_bytes} bytes. "
                       "Send it without `extensions.persistedQuery`.")
        return ResolvedOperation(query, sha256, "apq", register=True)

    def _text(self, query: str, trusted_only: bool) -> ResolvedOperation:
        sha256 = sha256_hex(query)
        if not trusted_only:
            return ResolvedOperation(query, sha256, "text")
        # The full text of a trusted document is that document: allowed, as its hash would be.
        found = self._trusted(self.trusted.by_hash(sha256))
        if found is None:
            raise _required()
        return found

    def _trusted(self, operation: TrustedOperation | None) -> ResolvedOperation | None:
        self._count("trusted", "miss" if operation is None else "hit")
        if operation is None:
            return None
        return ResolvedOperation(operation.body, operation.sha256, "trusted", trusted=operation)

    async def _registered(self, sha256: str) -> ResolvedOperation | None:
        query = await self.apq.get(sha256)
        self._count("apq", "miss" if query is None else "hit")
        # The store is keyed by content; a text that no longer matches its key is never run.
        if query is None or sha256_hex(query) != sha256:
            return None
        return ResolvedOperation(query, sha256, "apq")


def _apq_hash(persisted: object) -> str:
    if not isinstance(persisted, dict):
        raise _bad("`extensions.persistedQuery` must be an object {version, sha256Hash}.")
    version = persisted.get("version")
    if type(version) is not int or version != 1:  # `True == 1` in Python; JSON `true` is not a version
        raise _bad("Unsupported persisted query version: only version 1 is supported.")
    try:
        return normalize_hash(persisted.get("sha256Hash"))
    except InvalidDocumentId as exc:
        raise _bad(str(exc)) from None
