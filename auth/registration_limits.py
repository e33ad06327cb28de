"""Registrations per email address and per client IP, in a sliding window.

`register` answers the same whether or not an address has an account; this keeps a script from
creating accounts in bulk, or from using `register` to hash passwords on our CPU at its pace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from auth.oauth.data import digest
from auth.store import Store


@dataclass(frozen=True, slots=True)
class RegistrationLimits:
    """An `AttemptLimiter` (resolvers.context) for `register`."""

    store: Store
    per_address: int = 3
    per_ip: int = 10
    window_seconds: int = 3600

    async def attempt(self, account: str, address: str | None) -> int:
        waits = []
        for key, limit in ((f"register:account:{digest(account.strip().lower())}", self.per_address),
                           (f"register:ip:{digest(address or 'unknown')}", self.per_ip)):
            count, oldest_leaves_in = await self.store.hit(key, self.window_seconds)
            if count > limit:
                waits.append(max(1, math.ceil(oldest_leaves_in)))
        return max(waits, default=0)

    async def succeeded(self, account: str, address: str | None) -> None:
        """Every registration counts, successful or not."""
