"""Who pays: the bucket key and tier for each kind of caller (service clients have no HTTP path to
them yet: client-credentials tokens come with the OAuth server)."""

from __future__ import annotations

from limits.buckets import MemoryBuckets, Policy
from limits.limiter import Limiter, Tiers
from resolvers.context import Viewer

TIERS = Tiers(*(Policy(name, 10, 1) for name in ("anonymous", "user", "service", "admin")))
LIMITER = Limiter(MemoryBuckets(), TIERS)


def test_a_user_pays_per_client() -> None:
    bucket = LIMITER.bucket(Viewer(7, frozenset(), client_id="web"), "198.51.100.1")
    assert (bucket.key, bucket.policy.name) == ("user:7:client:web", "user")


def test_an_admin_gets_the_admin_tier() -> None:
    assert LIMITER.bucket(Viewer(7, frozenset({"admin"}), role="admin"), None).policy.name == "admin"


def test_an_admin_token_without_the_admin_scope_pays_as_a_user() -> None:
    assert LIMITER.bucket(Viewer(7, frozenset(), role="admin"), None).policy.name == "user"


def test_a_service_client_pays_as_itself() -> None:
    bucket = LIMITER.bucket(Viewer(None, frozenset(), client_id="reports"), "198.51.100.1")
    assert (bucket.key, bucket.policy.name) == ("client:reports", "service")


def test_anonymous_callers_pay_by_address_and_ipv6_by_network() -> None:
    assert LIMITER.bucket(None, "198.51.100.1").key == "ip:198.51.100.1"
    one = LIMITER.bucket(None, "2001:db8:1:2::1")
    other = LIMITER.bucket(None, "2001:db8:1:2:ffff::9")
    assert one.key == other.key == "ip:2001:db8:1:2::/64"
    assert LIMITER.bucket(None, None).key == "ip:unknown"
