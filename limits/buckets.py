"""Token buckets of query cost: the policy, the verdict, and the in-process implementation.

A bucket holds up to `capacity` points and regains `restore_rate` points a second. A request is
charged its requested cost before it runs, all or nothing, and refunded down to its actual cost
afterwards. `RedisBuckets` (limits/redis_buckets.py) does the same in one Lua script per charge, for
several server processes; `MemoryBuckets` serves one process when Redis is not configured.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Policy:
    """One tier's bucket: `name` (anonymous, user, service, admin), size and refill speed."""

    name: str
    capacity: int
    restore_rate: float  # points per second

    @property
    def window(self) -> int:
        """Seconds an empty bucket takes to fill up."""
        return math.ceil(self.capacity / self.restore_rate)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a charge. `available`: points left after it (when refused: points there are)."""

    allowed: bool
    available: float
    policy: Policy

    def retry_after(self, cost: int) -> int:
        """Whole seconds until the bucket holds `cost` points (at least 1 when refused)."""
        if self.allowed:
            return 0
        return max(1, math.ceil((cost - self.available) / self.policy.restore_rate))

    @property
    def full_in(self) -> int:
        """Whole seconds until the bucket is full again."""
        return max(0, math.ceil((self.policy.capacity - self.available) / self.policy.restore_rate))


class BucketsUnavailable(Exception):
    """The shared store did not answer (in time); the caller decides to fail open or closed."""


class Buckets(Protocol):
    async def charge(self, key: str, cost: int, policy: Policy) -> Verdict:
        """Take `cost` points if the bucket holds them (0 reads the bucket without spending)."""
        ...

    def refund(self, key: str, amount: int, policy: Policy) -> None:
        """Give back `amount` points, now or with the key's next charge; never blocks."""
        ...

    async def aclose(self) -> None:
        """Apply what is still pending; called once at shutdown."""
        ...


class MemoryBuckets:
    """Buckets in this process's memory: exact, since nothing awaits between reading and writing."""

    SWEEP_EVERY = 4096  # charges between sweeps of full buckets, which need no memory

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (points, as of monotonic time)
        self._charges = 0
        self._longest_window = 0

    async def charge(self, key: str, cost: int, policy: Policy) -> Verdict:
        now = time.monotonic()
        points = self._refilled(key, policy, now)
        allowed = cost <= points
        if allowed:
            points -= cost
        self._buckets[key] = (points, now)
        self._charges += 1
        self._longest_window = max(self._longest_window, policy.window)
        if self._charges % self.SWEEP_EVERY == 0:
            self._sweep(now)
        return Verdict(allowed, points, policy)

    def refund(self, key: str, amount: int, policy: Policy) -> None:
        now = time.monotonic()
        self._buckets[key] = (min(policy.capacity, self._refilled(key, policy, now) + amount), now)

    async def aclose(self) -> None:
        self._buckets.clear()

    def _refilled(self, key: str, policy: Policy, now: float) -> float:
        points, since = self._buckets.get(key, (float(policy.capacity), now))
        return min(float(policy.capacity), points + max(0.0, now - since) * policy.restore_rate)

    def _sweep(self, now: float) -> None:
        # A bucket untouched for longer than the slowest tier's window is full again: forget it.
        horizon = now - self._longest_window
        for key in [k for k, (_, since) in self._buckets.items() if since < horizon]:
            del self._buckets[key]
