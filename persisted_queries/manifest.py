"""Reading one manifest file of trusted documents.

Two formats are accepted, as client tool chains write them:

- Apollo's persisted query manifest (`npx generate-persisted-query-manifest`)::

    {"format": "apollo-persisted-query-manifest", "version": 1,
     "operations": [{"id": "<sha256 hex>", "name": "TaskList", "type": "query", "body": "query TaskList …"}]}

- the `{"<hash>": "<document>"}` map of GraphQL Code Generator's client preset
  (`persistedDocuments: true`).

A manifest is all or nothing: one bad entry rejects the file, with every problem listed, so an
operator never runs half of what a client expects. An id that is a SHA-256 must be the hash of its
body: a mismatch means the file was edited by hand or generated from different text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from graphql import DocumentNode, ExecutableDefinitionNode, GraphQLSyntaxError, OperationDefinitionNode, parse

from persisted_queries.ids import SHA256_PREFIX, InvalidDocumentId, is_sha256_hex, parse_document_id, sha256_hex

APOLLO_FORMAT = "apollo-persisted-query-manifest"


class ManifestError(Exception):
    """A manifest that cannot be used; `problems` names each entry that is wrong."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        super().__init__(f"{path.name}: " + "; ".join(problems))
        self.path = path
        self.problems = problems


@dataclass(frozen=True)
class TrustedOperation:
    """One document of a manifest, parsed once when the manifest is read."""

    id: str
    name: str | None
    type: str
    body: str
    sha256: str
    manifest: str
    document: DocumentNode = field(compare=False, repr=False)

    @property
    def label(self) -> str:
        return f"{self.name or '(anonymous)'} ({SHA256_PREFIX}{self.sha256[:12]}…)"


def load_manifest(path: Path) -> list[TrustedOperation]:
    """The operations of the manifest at `path`; `ManifestError` if anything in it is wrong."""
    try:
        data = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ManifestError(path, [f"cannot be read ({exc.strerror})"]) from None
    except orjson.JSONDecodeError as exc:
        raise ManifestError(path, [f"is not valid JSON ({exc})"]) from None
    entries, problems = _entries(data)
    operations: dict[str, TrustedOperation] = {}
    for entry_id, name, kind, body in entries:
        try:
            operation = _operation(entry_id, name, kind, body, path.name)
        except ValueError as exc:
            problems.append(f"operation {entry_id!r}: {exc}")
            continue
        known = operations.setdefault(operation.id, operation)
        if known.body != operation.body:
            problems.append(f"operation {entry_id!r} appears twice with different bodies")
    if problems:
        raise ManifestError(path, problems)
    return list(operations.values())


def _entries(data: Any) -> tuple[list[tuple[str, Any, Any, Any]], list[str]]:
    """(id, name, type, body) of each entry, unchecked, and the problems with the file's shape."""
    if not isinstance(data, dict):
        return [], ["must be a JSON object: Apollo's manifest or a {hash: document} map"]
    if "format" not in data:
        entries = [(str(key), None, None, value) for key, value in data.items()]
        return entries, []
    if data.get("format") != APOLLO_FORMAT:
        return [], [f"`format` must be {APOLLO_FORMAT!r}"]
    if data.get("version") != 1:
        return [], [f"`version` {data.get('version')!r} is not supported (only 1)"]
    operations = data.get("operations")
    if not isinstance(operations, list):
        return [], ["`operations` must be a list"]
    entries, problems = [], []
    for index, item in enumerate(operations):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            problems.append(f"operations[{index}] must be an object with a string `id`")
            continue
        entries.append((item["id"], item.get("name"), item.get("type"), item.get("body")))
    return entries, problems


def _operation(entry_id: str, name: Any, kind: Any, body: Any, manifest: str) -> TrustedOperation:
    if not isinstance(body, str) or not body.strip():
        raise ValueError("the body must be a non-empty string")
    try:
        ref = parse_document_id(entry_id)
    except InvalidDocumentId:
        raise ValueError("the id must be a SHA-256 (hex) or use only letters, digits and - . _ ~") from None
    digest = sha256_hex(body)
    if ref.sha256 is not None and ref.sha256 != digest:
        raise ValueError(f"the id is not the SHA-256 of the body (that is {digest})")
    if ref.sha256 is None and is_sha256_hex(entry_id.lower()):
        raise ValueError("a SHA-256 id must be lower case")
    try:
        document = parse(body)
    except GraphQLSyntaxError as exc:
        where = f" (line {exc.locations[0].line}, column {exc.locations[0].column})" if exc.locations else ""
        raise ValueError(f"the body is not valid GraphQL: {exc.message}{where}") from None
    if not all(isinstance(d, ExecutableDefinitionNode) for d in document.definitions):
        raise ValueError("the body may hold only operations and fragments")
    first = next((d for d in document.definitions if isinstance(d, OperationDefinitionNode)), None)
    if first is None:
        raise ValueError("the body has no operation")
    actual_type = first.operation.value
    if kind is not None and kind != actual_type:
        raise ValueError(f"`type` is {kind!r} but the body is a {actual_type}")
    if name is not None and not isinstance(name, str):
        raise ValueError("`name` must be a string")
    actual_name = first.name.value if first.name else None
    return TrustedOperation(entry_id, name or actual_name, actual_type, body, digest, manifest, document)
