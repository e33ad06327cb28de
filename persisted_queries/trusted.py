"""The trusted documents: every manifest (`*.json`) in one directory, indexed by id and by hash.

Loaded when the server starts and reloaded when the files change (`reload_if_changed`, polled by
the app). A manifest that fails to load is logged and left out, and the server keeps the others;
on a reload, a file that has turned bad keeps its last good content, so a half-copied deploy
never takes operations away from clients that use them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from persisted_queries.ids import DocumentId
from persisted_queries.manifest import ManifestError, TrustedOperation, load_manifest

log = logging.getLogger("tandem.persisted_queries")

# The schema the manifests were last checked against lives beside them, not as a manifest.
LOCK_FILE = "schema.lock.graphql"

_Signature = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class LoadReport:
    operations: int
    manifests: int
    errors: dict[str, list[str]]


class TrustedDocuments:
    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.errors: dict[str, list[str]] = {}
        self._by_file: dict[str, list[TrustedOperation]] = {}
        self._by_id: dict[str, TrustedOperation] = {}
        self._by_hash: dict[str, TrustedOperation] = {}
        self._manifests: dict[str, frozenset[str]] = {}  # sha256 -> the manifests holding that document
        self._signature: _Signature | None = None

    @property
    def operations(self) -> list[TrustedOperation]:
        return [operation for name in sorted(self._by_file) for operation in self._by_file[name]]

    def by_hash(self, sha256: str) -> TrustedOperation | None:
        return self._by_hash.get(sha256)

    def manifests_of(self, sha256: str) -> frozenset[str]:
        """The manifests (file names) that hold this document; empty when none does."""
        return self._manifests.get(sha256, frozenset())

    def by_document_id(self, document_id: DocumentId) -> TrustedOperation | None:
        found = self._by_id.get(document_id.value)
        if found is None and document_id.sha256 is not None:
            found = self._by_hash.get(document_id.sha256)
        return found

    def load(self) -> LoadReport:
        """(Re)read every manifest now."""
        self._signature = self._current_signature()
        files = [] if self.directory is None else sorted(self.directory.glob("*.json"))
        by_file: dict[str, list[TrustedOperation]] = {}
        errors: dict[str, list[str]] = {}
        for path in files:
            try:
                by_file[path.name] = load_manifest(path)
            except ManifestError as exc:
                errors[path.name] = exc.problems
                log.error("persisted query manifest %s not loaded: %s", path, "; ".join(exc.problems))
                if path.name in self._by_file:
                    by_file[path.name] = self._by_file[path.name]  # keep the last good version
        self._index(by_file, errors)
        log.info("trusted documents: %d operations from %d manifests (%d with errors)",
                 len(self._by_id), len(by_file), len(errors))
        return LoadReport(len(self._by_id), len(by_file), errors)

    def reload_if_changed(self) -> LoadReport | None:
        """Reload when a manifest was added, removed or rewritten since the last load."""
        if self._current_signature() == self._signature:
            return None
        return self.load()

    def _index(self, by_file: dict[str, list[TrustedOperation]], errors: dict[str, list[str]]) -> None:
        by_id: dict[str, TrustedOperation] = {}
        for name in sorted(by_file):
            kept = []
            for operation in by_file[name]:
                other = by_id.setdefault(operation.id, operation)
                if other.body != operation.body:
                    errors.setdefault(name, []).append(
                        f"operation {operation.id!r} is also in {other.manifest} with a different body; "
                        f"the one in {other.manifest} is used"
                    )
                    log.error("persisted query manifest %s: id %s conflicts with %s", name, operation.id,
                              other.manifest)
                    continue
                kept.append(operation)
            by_file[name] = kept
        # Swap whole dicts: a request running now sees the old set or the new one, never a mix.
        self._by_file = by_file
        self._by_id = by_id
        self._by_hash = {operation.sha256: operation for operation in by_id.values()}
        holders: dict[str, set[str]] = {}
        for name, operations in by_file.items():
            for operation in operations:
                holders.setdefault(operation.sha256, set()).add(name)
        self._manifests = {sha256: frozenset(names) for sha256, names in holders.items()}
        self.errors = errors

    def _current_signature(self) -> _Signature:
        if self.directory is None:
            return ()
        try:
            stats = [(path.name, path.stat()) for path in self.directory.glob("*.json")]
        except OSError:
            return ()
        return tuple(sorted((name, stat.st_mtime_ns, stat.st_size) for name, stat in stats))

