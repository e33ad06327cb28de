"""Redis buckets with a fallback in this process, for while Redis does not answer.

Failing open for a whole outage would leave every caller unlimited. Instead, while Redis fails (its
breaker open), each instance charges buckets of its own holding its share of the tier: capacity and
restore rate divided by `instances`, the number of instances that share the Redis. Together they then
admit about what the shared bucket would; each caller's Redis bucket picks up again where it was once
Redis answers. Refunds go where charges go at the time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from limits.buckets import BucketsUnavailable, MemoryBuckets, Policy, Verdict
from limits.redis_buckets import RedisBuckets

log = logging.getLogger("tandem.limits")


class FallbackBuckets:
    def __init__(self, primary: RedisBuckets, *, instances: int = 1,
                 on_fallback: Callable[[], None] = lambda: None) -> None:
        self.primary = primary
        self.local = MemoryBuckets()
        self.instances = max(1, instances)
        self.on_fallback = on_fallback
        self._shares: dict[Policy, Policy] = {}
        self._falling_back = False

    async def charge(self, key: str, cost: int, policy: Policy) -> Verdict:
        try:
            verdict = await self.primary.charge(key, cost, policy)
        except BucketsUnavailable as exc:
            self.on_fallback()
            if not self._falling_back:  # once per outage, not once per request
                log.warning("rate limiter: Redis unavailable (%s); charging this instance's share "
                            "(1/%d of each tier) until it answers", exc, self.instances)
                self._falling_back = True
            return await self.local.charge(key, cost, self._share(policy))
        if self._falling_back:
            log.info("rate limiter: Redis answers again; shared buckets resume")
            self._falling_back = False
        return verdict

    def refund(self, key: str, amount: int, policy: Policy) -> None:
        if self._falling_back:
            self.local.refund(key, amount, self._share(policy))
        else:
            self.primary.refund(key, amount, policy)

    async def aclose(self) -> None:
        await self.primary.aclose()

    def _share(self, policy: Policy) -> Policy:
        share = self._shares.get(policy)
        if share is None:
            share = replace(policy, capacity=max(1, policy.capacity // self.instances),
                            restore_rate=policy.restore_rate / self.instances)
            self._shares[policy] = share
        return share
