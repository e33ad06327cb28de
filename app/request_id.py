"""The request id: taken from a sane incoming `X-Request-ID`, else made; visible to logs via a contextvar."""

from __future__ import annotations

import os
import re
import threading
from contextvars import ContextVar

current_request_id: ContextVar[str] = ContextVar("request_id", default="-")

_SANE = re.compile(r"^[A-Za-z0-9._-]{8,128}$")
_ID_BYTES = 16  # as random as a UUID4's hex
_POOL_BYTES = 4096


class _RandomIds:
    """Random ids cut from a pool of `os.urandom` bytes: one system call per 256 ids instead of one per
    request (a system call costs a served request more than its ~0.4 µs in a loop, measured)."""

    def __init__(self) -> None:
        self.discard()

    def discard(self) -> None:
        """Forget the pool: a forked child must not hand out the ids its parent will (nor wait on a lock
        another thread of the parent held)."""
        self._lock = threading.Lock()  # WebSocket and HTTP requests may ask from different threads
        self._pool = b""
        self._offset = 0

    def next(self) -> str:
        with self._lock:
            if self._offset >= len(self._pool):
                self._pool = os.urandom(_POOL_BYTES)
                self._offset = 0
            start = self._offset
            self._offset += _ID_BYTES
            return self._pool[start:start + _ID_BYTES].hex()


_ids = _RandomIds()
os.register_at_fork(after_in_child=_ids.discard)


def new_request_id(incoming: str | None) -> str:
    # Reusing a caller's id ties our logs to theirs; anything odd is replaced, never echoed.
    if incoming and _SANE.match(incoming):
        return incoming
    return _ids.next()
