"""Who pays for a request (the bucket key and tier), and what happens when the buckets cannot answer.

The bucket key is the caller: a user through one client (`user:<id>:client:<client id>`), a service
client acting for nobody (`client:<client id>`), or, for anonymous requests, the client address
(`ip:<address>`; IPv6 addresses by their /64 network, which one subscriber usually holds whole).
Behind a proxy, uvicorn's `proxy_headers` puts the forwarded address there.

When Redis is configured but does not answer in time, `fail_open` (the default) lets the request
through as if its bucket were full, logs it and counts it in `on_unavailable` (a metric); otherwise
the request is refused (`Verdict.unavailable`).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from limits.buckets import Buckets, BucketsUnavailable, Policy, Verdict
from resolvers.context import Viewer

log = logging.getLogger("tandem.limits")


@dataclass(frozen=True, slots=True)
class Tiers:
    anonymous: Policy
    user: Policy
    service: Policy
    admin: Policy


@dataclass(frozen=True, slots=True)
class Bucket:
    key: str
    policy: Policy


@dataclass(frozen=True, slots=True)
class Charge:
    """A verdict, or `unavailable` when the buckets did not answer and the limiter fails closed."""

    verdict: Verdict
    unavailable: bool = False


@lru_cache(maxsize=4096)  # parsing an address is a few µs, and callers come back
def client_network(address: str | None) -> str:
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]  # not an IP (a test client, a Unix socket): use it as it is
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class Limiter:
    def __init__(
        self, buckets: Buckets, tiers: Tiers, *, fail_open: bool = True,
        on_unavailable: Callable[[], None] = lambda: None,
    ) -> None:
        self.buckets = buckets
        self.tiers = tiers
        self.fail_open = fail_open
        self.on_unavailable = on_unavailable

    def bucket(self, viewer: Viewer | None, client_address: str | None) -> Bucket:
        if viewer is None:
            return Bucket(f"ip:{client_network(client_address)}", self.tiers.anonymous)
        if viewer.user_id is None:
            return Bucket(f"client:{viewer.client_id or '-'}", self.tiers.service)
        policy = self.tiers.admin if viewer.is_admin else self.tiers.user
        return Bucket(f"user:{viewer.user_id}:client:{viewer.client_id or '-'}", policy)

    async def charge(self, bucket: Bucket, cost: int) -> Charge:
        try:
            return Charge(await self.buckets.charge(bucket.key, cost, bucket.policy))
        except BucketsUnavailable as exc:
            self.on_unavailable()
            log.warning("rate limiter unavailable (%s); failing %s", exc, "open" if self.fail_open else "closed")
            full = float(bucket.policy.capacity)
            if self.fail_open:
                return Charge(Verdict(True, max(0.0, full - cost), bucket.policy), unavailable=False)
            return Charge(Verdict(False, full, bucket.policy), unavailable=True)

    def refund(self, bucket: Bucket, amount: int) -> None:
        if amount > 0:
            self.buckets.refund(bucket.key, amount, bucket.policy)

    async def aclose(self) -> None:
        await self.buckets.aclose()
