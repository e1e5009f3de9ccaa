"""Where webhooks may be sent (SSRF protection).

By default a destination must resolve to public addresses only: every address a
host name resolves to is checked (`is_public`), and the connection goes to the
address that was checked, never to a second resolution (no DNS rebinding). Redirects
are not followed (the worker treats a 3xx as a failure). An operator may allow
named hosts with `CONECTADES_WEBHOOK_ALLOWED_HOSTS` (comma-separated); a host is
allowed when the URL's host is spelled exactly as listed, so allowing `127.0.0.1`
allows neither `127.0.0.2`, `[::1]`, `2130706433` nor `::ffff:127.0.0.1`.

`check_url` is the API's check when an endpoint is created or changed (the URL's
shape, and the host when it is an address literal in any spelling);
`resolve_vetted` is the worker's, at every connect, after DNS (worker/http.py
connects to the addresses it returns)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from urllib.parse import SplitResult, urlsplit

MAX_URL_LENGTH = 2000

IPAddress = IPv4Address | IPv6Address

# Ranges that embed an IPv4 address in an IPv6 one: the IPv4 address decides.
_NAT64 = IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = IPv6Network("::/96")
# Not covered (or not in every Python version) by ipaddress's flags.
_REFUSED: tuple[IPv4Network | IPv6Network, ...] = (
    IPv4Network("0.0.0.0/8"),
    IPv4Network("100.64.0.0/10"),  # carrier-grade NAT
    IPv4Network("192.0.0.0/24"),  # IETF protocol assignments
    IPv4Network("198.18.0.0/15"),  # benchmarking
    IPv4Network("224.0.0.0/4"),  # multicast
    IPv4Network("240.0.0.0/4"),  # reserved, broadcast
    IPv6Network("fc00::/7"),  # unique local
    IPv6Network("fe80::/10"),  # link-local
    IPv6Network("fec0::/10"),  # site-local (deprecated)
    IPv6Network("ff00::/8"),  # multicast
    IPv6Network("2001::/32"),  # Teredo
    IPv6Network("2001:db8::/32"),  # documentation
)


class DestinationRefused(Exception):
    """The destination is not a public address and its host is not allowed."""


def is_public(ip: IPAddress) -> bool:
    """A globally routable unicast address: not loopback, private (RFC 1918, ULA),
    link-local (169.254/16 with the cloud metadata address, fe80::/10), 0/8, CGNAT,
    multicast, reserved or documentation; an IPv6 address embedding an IPv4 one
    (mapped, compatible, 6to4, NAT64) is judged by the IPv4 address."""
    if isinstance(ip, IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_public(embedded)
    if any(ip in net for net in _REFUSED if net.version == ip.version):
        return False
    return bool(
        ip.is_global
        and not (
            ip.is_private
            or ip.is_loopback
            or ip.is_link_local
            or ip.is_multicast
            or ip.is_reserved
            or ip.is_unspecified
        )
    )


def _embedded_ipv4(ip: IPv6Address) -> IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or ip in _IPV4_COMPATIBLE:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def literal_address(host: str) -> IPAddress | None:
    """The address a host literally names, in any spelling a resolver accepts
    (`127.0.0.1`, `2130706433`, `0x7f.1`, `0177.1`, `::ffff:127.0.0.1`); None for a name."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host):
        try:
            return IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def normalize_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def parse_allowed(raw: str | Iterable[str]) -> frozenset[str]:
    items = raw.split(",") if isinstance(raw, str) else raw
    return frozenset(normalize_host(h) for h in items if h.strip())


def host_allowed(host: str, allowed: frozenset[str]) -> bool:
    return normalize_host(host) in allowed


def check_url(url: str, allowed: frozenset[str]) -> str | None:
    """Why `url` cannot be a webhook destination, or None when it can (so far:
    names are resolved and checked again at every connection)."""
    if len(url) > MAX_URL_LENGTH:
        return f"must be at most {MAX_URL_LENGTH} characters"
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return "must not contain spaces or control characters"
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in ("https", "http"):
        return "must be an http:// or https:// URL"
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "must not contain credentials (user:password@)"
    host = parts.hostname or ""
    if not host:
        return "must name a host"
    if parts.fragment:
        return "must not have a #fragment"
    if port == 0:
        return "must not use port 0"
    if host_allowed(host, allowed):
        return None
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return "must point to a public host (this name is local)"
    ip = literal_address(host)
    if ip is not None and not is_public(ip):
        return (
            "must point to a public address "
            "(loopback, private, link-local and reserved ranges are refused)"
        )
    return None


async def resolve_vetted(host: str, port: int, allowed: frozenset[str]) -> list[str]:
    """The addresses to connect to for `host`: all of them public, or the host allowed
    by the operator; DestinationRefused otherwise (if any address is not public)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except socket.gaierror as exc:
        raise DestinationRefused(f"{host}: does not resolve ({exc.strerror})") from None
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise DestinationRefused(f"{host}: no address")
    if host_allowed(host, allowed):
        return addresses
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not is_public(ip):
            raise DestinationRefused(f"{host}: resolves to {ip}, which is not a public address")
    return addresses
