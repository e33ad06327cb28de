"""Who may run only trusted documents.

One function answers "must this request use a trusted document?", so the rule has one home. Today
its inputs are settings: a list of OAuth client ids registered as trusted-documents-only, and the
production switch for anonymous traffic. When OAuth clients carry their own
`trusted_documents_only` flag, the caller passes that flag in and the list goes away.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class TrustedDocumentPolicy:
    trusted_only_clients: frozenset[str] = frozenset()
    require_for_anonymous: bool = False

    @classmethod
    def of(cls, clients: Iterable[str], *, require_for_anonymous: bool) -> TrustedDocumentPolicy:
        return cls(frozenset(clients), require_for_anonymous)

    def requires_trusted(self, *, anonymous: bool, client_id: str | None, client_flag: bool = False) -> bool:
        """True when the request may run nothing but a document from a manifest.

        `client_flag` is the OAuth client's own trusted-documents-only flag, once clients have one.
        """
        if anonymous:
            return self.require_for_anonymous
        return client_flag or (client_id is not None and client_id in self.trusted_only_clients)
