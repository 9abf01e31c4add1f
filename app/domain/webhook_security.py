"""Where webhooks may go (signatures: webhook_signing.py).

Address policy: only http(s); never link-local or a cloud metadata endpoint;
loopback and private ranges only with WEBHOOK_ALLOW_PRIVATE. A URL is judged
twice: literally when it is accepted (callbackUrl, WEBHOOK_URLS), and again at
delivery against every address its host resolves to, so a name that later
resolves somewhere internal (DNS rebinding) is still refused. The delivery
then connects to the very address that was checked.

Standard library only: app.config imports this module while loading settings.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog"})
METADATA_NETWORKS = (
    ipaddress.ip_network("169.254.169.254/32"),  # AWS, GCP, Azure, OpenStack...
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS over IPv6 (inside fc00::/7)
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud
)
# IPv6 ranges whose addresses carry an IPv4 one that routers or translators
# will deliver to: NAT64 (RFC 6052 well-known and RFC 8215 local-use prefixes)
# and SIIT's IPv4-translated form (RFC 2765). IPv4-mapped, IPv4-compatible,
# 6to4 and Teredo are recognised below.
NAT64 = (
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
    ipaddress.ip_network("::ffff:0:0:0/96"),
)
IPV4_COMPATIBLE = ipaddress.ip_network(
    "::/96"
)  # ::a.b.c.d (deprecated, still routed by some stacks)


class RefusedAddress(Exception):
    """The URL's host is, or resolves to, an address webhooks may not reach."""


def embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address an IPv6 one wraps: a webhook to it reaches them too,
    so each is judged as if it were the destination."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if any(ip in network for network in NAT64):
        found.append(low32)
    if ip in IPV4_COMPATIBLE and int(ip) > 1:  # not :: or ::1, judged as themselves
        found.append(low32)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)  # (server, client)
    return found


def address_refusal(ip: IPAddress, allow_private: bool) -> str | None:
    """Why ``ip`` may not receive webhooks, or None if it may."""
    for inner in embedded_ipv4(ip):
        reason = _plain_refusal(inner, allow_private)
        if reason is not None:
            return f"{ip} embeds {reason}"
    return _plain_refusal(ip, allow_private)


def _plain_refusal(ip: IPAddress, allow_private: bool) -> str | None:
    if any(ip in network for network in METADATA_NETWORKS):
        return f"{ip} is a cloud metadata address"
    if ip.is_link_local:
        return f"{ip} is link-local"
    if ip.is_unspecified or ip.is_multicast:
        return f"{ip} is not a unicast destination"
    if not ip.is_global and not allow_private:
        return f"{ip} is loopback or private (WEBHOOK_ALLOW_PRIVATE is off)"
    return None


def _literal_address(host: str) -> IPAddress | None:
    """The address a host names by itself, including forms like 2852039166 or
    0x7f.1 that the resolver also reads as IPv4 literals."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        info = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError):
        return None
    return ipaddress.ip_address(str(info[0][4][0]).split("%", 1)[0])


def _host_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    return host.rstrip(".").lower()


def url_refusal(url: str, allow_private: bool) -> str | None:
    """Judges what the URL says literally (no DNS): None if acceptable."""
    host = _host_of(url)
    if host is None:
        return "must be an http or https URL with a host"
    if host in METADATA_HOSTS:
        return f"{host} is a cloud metadata host"
    literal = _literal_address(host)
    return address_refusal(literal, allow_private) if literal is not None else None


def resolve_allowed(url: str, allow_private: bool) -> list[IPAddress]:
    """Every address the URL's host resolves to now; raises RefusedAddress if
    any of them is forbidden (a mixed answer is treated as hostile)."""
    reason = url_refusal(url, allow_private)
    if reason is not None:
        raise RefusedAddress(reason)
    parts = urlsplit(url)
    host = _host_of(url) or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {host}: {exc}") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        reason = address_refusal(ip, allow_private)
        if reason is not None:
            raise RefusedAddress(f"{host} resolves to {reason}")
        if ip not in addresses:
            addresses.append(ip)
    return addresses
