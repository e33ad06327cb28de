"""Where webhooks may be sent: the SSRF rules for outbound URLs.

In production an endpoint must be `https://` and every address its host resolves to must be
public: no loopback, private (RFC 1918, unique local), link-local (cloud metadata at
169.254.169.254), carrier-grade NAT, multicast or reserved ranges. Development allows anything,
so a receiver on 127.0.0.1 can be used for testing.

The check runs when an endpoint is saved and again before every delivery, and the delivery then
connects to the very address that was checked (`public_addresses` returns it), so a DNS answer
that changes in between (DNS rebinding) cannot redirect a delivery to an internal host.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from resolvers.errors import BadUserInput

URL_MAX = 2000


class AddressError(Exception):
    """The URL's host cannot be called; the message says why and is safe to show its owner."""


class UnresolvableHost(AddressError):
    """The host name does not resolve."""


class BlockedAddress(AddressError):
    """The host is, or resolves to, an address that this deployment may not call."""


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    allow_private: bool  # development: loopback and private receivers are fine

    @property
    def require_https(self) -> bool:
        return not self.allow_private


# IPv6 ranges that carry an IPv4 address in their last 32 bits: reaching one may reach that address.
_EMBEDS_IPV4_LOW = (
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible (deprecated): ::127.0.0.1
    ipaddress.IPv6Network("::ffff:0:0/96"),  # IPv4-mapped
    ipaddress.IPv6Network("::ffff:0:0:0/96"),  # IPv4-translated (RFC 2765)
    ipaddress.IPv6Network("64:ff9b::/96"),  # NAT64 well-known prefix (RFC 6052)
)
# Never a public destination: local-use NAT64 (RFC 8215), site-local (deprecated, RFC 3879).
_NEVER_PUBLIC = (ipaddress.IPv6Network("64:ff9b:1::/48"), ipaddress.IPv6Network("fec0::/10"))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address] | None:
    """The IPv4 addresses an IPv6 address leads to (6to4, Teredo, NAT64, mapped...), or None."""
    if any(ip in network for network in _EMBEDS_IPV4_LOW):
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip.sixtofour is not None:  # 2002::/16
        return [ip.sixtofour]
    if ip.teredo is not None:  # 2001::/32: (server, client)
        return list(ip.teredo)
    return None


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in network for network in _NEVER_PUBLIC):
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None:  # public only if every IPv4 address it leads to is
            return all(v4.is_global and not v4.is_multicast for v4 in embedded)
    return ip.is_global and not ip.is_multicast


def parse_url(url: str, policy: UrlPolicy, field: str = "url") -> SplitResult:
    """Syntax and scheme checks that need no network; raises `BadUserInput` naming `field`."""
    text = url.strip()
    if not text or len(text) > URL_MAX:
        raise BadUserInput(f"`{field}` must be a URL of at most {URL_MAX} characters.", field=field)
    try:
        parts = urlsplit(text)
        port = parts.port  # raises for a port beyond 65535
    except ValueError:
        raise BadUserInput(f"`{field}` is not a valid URL.", field=field) from None
    if port == 0:
        raise BadUserInput(f"`{field}` is not a valid URL.", field=field)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadUserInput(f"`{field}` must be an http:// or https:// URL.", field=field)
    if policy.require_https and parts.scheme != "https":
        raise BadUserInput(f"`{field}` must use https://.", field=field)
    if parts.username is not None or parts.password is not None:
        raise BadUserInput(f"`{field}` must not contain credentials; the signature authenticates us.", field=field)
    if parts.fragment:
        raise BadUserInput(f"`{field}` must not have a #fragment.", field=field)
    if any(ord(c) < 33 or ord(c) == 127 for c in text):
        raise BadUserInput(f"`{field}` must not contain spaces or control characters.", field=field)
    return parts


def default_port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


async def public_addresses(parts: SplitResult, policy: UrlPolicy) -> list[str]:
    """The addresses to connect to for this URL, each one allowed by `policy`.

    Raises `UnresolvableHost`, or `BlockedAddress` when any of its addresses is not allowed:
    one private answer among public ones is enough to refuse (an attacker controls the order).
    """
    host = parts.hostname or ""
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, default_port(parts), type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError):
            raise UnresolvableHost(f"{host} does not resolve.") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise UnresolvableHost(f"{host} does not resolve.")
    if not policy.allow_private:
        for address in addresses:
            if not is_public(address.split("%")[0]):
                raise BlockedAddress(f"{host} resolves to a private or reserved address ({address}).")
    return addresses


async def check_url(url: str, policy: UrlPolicy, field: str = "url") -> str:
    """The URL to store, after the syntax checks and, in production, the address checks."""
    parts = parse_url(url, policy, field)
    if not policy.allow_private:
        try:
            await public_addresses(parts, policy)
        except AddressError as exc:
            raise BadUserInput(f"`{field}` is not allowed: {exc}", field=field) from None
    return parts.geturl()
