"""Parsed and validated documents, by the SHA-256 of their text: a known operation is never parsed
or validated again.

`DocumentCache` is one per app; `CachedDocuments` is the Strawberry extension (built fresh per
request) that consults it. On a hit, `on_parse` hands Strawberry the cached `DocumentNode`, and
`on_validate` marks the request valid when this document has passed validation under the very same
rules before (rules can differ per request, e.g. introspection off for anonymous callers, so the
rule set is part of the key). Only valid documents are cached: errors hold per-request details
such as the request id, and a broken document is cheap to send again anyway.

Trusted documents are pinned (parsed once when their manifest loads, never evicted); everything
else shares an LRU bounded by the total length of the cached source texts, because a syntax tree
takes about a hundred times its source in memory and anyone can send a new text.

This replaces Strawberry's ParserCache + ValidationCache, which key by text and share cached
validation errors between concurrent requests.

Whatever else is derived from a cached document alone (or from it and a few request values, such as
its shape per operation name or its static cost per variables) can live as long as the document
does: the extension leaves the entry's `derived` dict at `context.extras[DOCUMENT_MEMO]` as soon as
it hands out a cached document (before validation: the static limits measure it first), and for a
new one once it is known to be valid. Facts that hold only for a valid document must be derived
after validation (execution plans, prices).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from cachetools import LRUCache
from graphql import ASTValidationRule, DocumentNode
from strawberry.extensions import SchemaExtension

from persisted_queries.ids import sha256_hex

# Where the transport leaves the hash it already computed: `context.extras[DOCUMENT_HASH]`.
DOCUMENT_HASH = "document_sha256"
# Where a valid document's memo is left for other extensions: `context.extras[DOCUMENT_MEMO]`.
DOCUMENT_MEMO = "document_memo"

Rules = tuple[type[ASTValidationRule], ...]


@dataclass
class CachedDocument:
    document: DocumentNode
    size: int
    valid_under: set[Rules] = field(default_factory=set)
    derived: dict[Hashable, object] = field(default_factory=dict)


class DocumentCache:
    def __init__(self, max_chars: int, *, count: Callable[[bool], None] | None = None) -> None:
        self._recent: LRUCache[str, CachedDocument] = LRUCache(maxsize=max_chars, getsizeof=lambda e: e.size)
        self._pinned: dict[str, CachedDocument] = {}
        self._count = count or (lambda hit: None)

    def get(self, sha256: str) -> CachedDocument | None:
        found = self._pinned.get(sha256) or self._recent.get(sha256)
        self._count(found is not None)
        return found

    def peek(self, sha256: str) -> CachedDocument | None:
        """`get` without counting a hit or a miss: the caller counts `hit()` if it uses the entry."""
        return self._pinned.get(sha256) or self._recent.get(sha256)

    def hit(self) -> None:
        self._count(True)

    def pin(self, documents: Mapping[str, DocumentNode]) -> None:
        """Make these (the trusted documents) the pinned set; keeps what was learnt about unchanged ones."""
        self._pinned = {
            sha256: self._pinned.get(sha256) or CachedDocument(document, 0) for sha256, document in documents.items()
        }

    def remember_valid(self, sha256: str, document: DocumentNode, source_length: int, rules: Rules) -> CachedDocument:
        entry = self._pinned.get(sha256) or self._recent.get(sha256)
        if entry is None or entry.document is not document:
            entry = CachedDocument(document, max(source_length, 1))
            if entry.size <= self._recent.maxsize:  # else not worth evicting everything for
                self._recent[sha256] = entry
        entry.valid_under.add(rules)
        return entry

    def __len__(self) -> int:
        return len(self._pinned) + len(self._recent)


class CachedDocuments(SchemaExtension):
    """Per-request extension over the app's `DocumentCache`; list it after extensions that add rules."""

    def __init__(self, cache: DocumentCache) -> None:
        super().__init__()
        self.cache = cache
        self._sha256: str | None = None
        self._entry: CachedDocument | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query:
            self._sha256 = _known_hash(context.context) or sha256_hex(context.query)
            self._entry = self.cache.get(self._sha256)
            if self._entry is not None:
                context.graphql_document = self._entry.document
                _share_memo(context.context, self._entry)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        rules = context.validation_rules
        if self._entry is not None and context.pre_execution_errors is None and rules in self._entry.valid_under:
            context.pre_execution_errors = []  # Strawberry skips validation when errors are already set
            yield
            return
        yield
        document = context.graphql_document
        if self._sha256 is not None and document is not None and not context.pre_execution_errors:
            entry = self.cache.remember_valid(self._sha256, document, len(context.query or ""), rules)
            _share_memo(context.context, entry)


def _share_memo(context: Any, entry: CachedDocument) -> None:
    extras = getattr(context, "extras", None)
    if isinstance(extras, dict):
        extras[DOCUMENT_MEMO] = entry.derived


def _known_hash(context: Any) -> str | None:
    extras = getattr(context, "extras", None)
    value = extras.get(DOCUMENT_HASH) if isinstance(extras, dict) else None
    return value if isinstance(value, str) else None
