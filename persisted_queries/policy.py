"""Who may run only trusted documents.

One function answers "must this request use a trusted document?", so the rule has one home: an OAuth
client registered as trusted-documents-only (its tokens say so), and, as a production switch, anonymous
traffic.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrustedDocumentPolicy:
    require_for_anonymous: bool = False

    def requires_trusted(self, *, anonymous: bool, client_flag: bool) -> bool:
        """True when the request may run nothing but a document from a manifest.

        `client_flag`: the token's OAuth client is registered as trusted-documents-only.
        """
        return self.require_for_anonymous if anonymous else client_flag
