"""Who is in a document right now, and where their cursor is: ephemeral, per process (across
instances, `realtime/shared_presence.py` decides when someone first arrived or finally left).

Cursor moves are rate limited per user and document (a token bucket), and a cursor that is not
moved again within `timeout` seconds expires (the hub then announces LEFT), unless the user still
has a subscription to the document open here: an open socket is presence enough.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

Key = tuple[int, int]  # (document id, user id)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class Presence:
    def __init__(self, *, timeout: float = 30.0, rate: float = 20.0, burst: int = 40) -> None:
        """`rate` cursor moves per second may be sustained, `burst` at once."""
        self.timeout = timeout
        self.rate = rate
        self.burst = burst
        self._buckets: dict[Key, _Bucket] = {}
        self._expires: dict[Key, float] = {}
        self._watching: Counter[Key] = Counter()

    def allow(self, document_id: int, user_id: int, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        bucket = self._buckets.setdefault((document_id, user_id), _Bucket(self.burst, now))
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def moved(self, document_id: int, user_id: int, now: float | None = None) -> float:
        """Record a cursor move; returns when it expires (seconds, monotonic clock)."""
        expires = (time.monotonic() if now is None else now) + self.timeout
        self._expires[(document_id, user_id)] = expires
        return expires

    def watch(self, document_id: int, user_id: int) -> bool:
        """A subscription opened; True when it is the user's first here (announce JOINED)."""
        self._watching[(document_id, user_id)] += 1
        return self._watching[(document_id, user_id)] == 1

    def unwatch(self, document_id: int, user_id: int) -> bool:
        """A subscription closed; True when it was the user's last here (announce LEFT)."""
        key = (document_id, user_id)
        self._watching[key] -= 1
        if self._watching[key] > 0:
            return False
        del self._watching[key]
        self._expires.pop(key, None)
        self._buckets.pop(key, None)
        return True

    def watching(self) -> list[Key]:
        """(document, user) pairs with a subscription open here."""
        return list(self._watching)

    def watchers(self, document_id: int) -> list[int]:
        """Users with a subscription to `document_id` open here."""
        return sorted(user for document, user in self._watching if document == document_id)

    def expired(self, now: float | None = None) -> list[Key]:
        """Cursors past their timeout whose users watch nothing here; forgotten as they are returned."""
        now = time.monotonic() if now is None else now
        gone = [key for key, expires in self._expires.items() if expires <= now]
        for key in gone:
            del self._expires[key]
            self._buckets.pop(key, None)
        return [key for key in gone if key not in self._watching]
