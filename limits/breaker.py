"""A circuit breaker: after `threshold` failures in a row, calls are refused at once for `cooldown`
seconds, then one probe is let through; its success closes the breaker, its failure opens it again.

So a hung Redis costs the rate limiter one short timeout per cool-down period instead of one per
request (each refusal fails open or closed as the limiter is set).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Breaker:
    def __init__(self, *, threshold: int = 3, cooldown: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._open_until: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        if self._open_until is None:
            return "closed"
        return "half-open" if self._probing or self._clock() >= self._open_until else "open"

    def allow(self) -> bool:
        """Whether to make the call now (in half-open state: only the one probe)."""
        if self._open_until is None:
            return True
        if self._probing or self._clock() < self._open_until:
            return False
        self._probing = True
        return True

    def success(self) -> None:
        self._failures, self._open_until, self._probing = 0, None, False

    def failure(self) -> None:
        self._failures += 1
        if self._probing or self._failures >= self.threshold:
            self._open_until = self._clock() + self.cooldown
        self._probing = False
