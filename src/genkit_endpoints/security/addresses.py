# SPDX-License-Identifier: Apache-2.0
"""Which IP addresses an outbound fetch of a user-supplied URL may connect to.

Only globally routable unicast addresses. The ranges are listed here rather than taken
from ``ipaddress``'s ``is_private``/``is_global`` alone, because those flags changed
between Python patch releases and say nothing about IPv4 hidden inside IPv6 — an
IPv4-mapped, NAT64 or 6to4 address reaches the IPv4 host it embeds, so it is judged as
that IPv4 address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

__all__ = ["IPAddress", "IPNetwork", "embedded_ipv4", "in_networks", "is_public", "parse_networks"]

_NON_PUBLIC_V4 = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network", unspecified
        "10.0.0.0/8",  # RFC 1918
        "100.64.0.0/10",  # carrier-grade NAT (also Alibaba's metadata service)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata (169.254.169.254)
        "172.16.0.0/12",  # RFC 1918
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",  # RFC 1918
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and 255.255.255.255 broadcast
    )
)
_NON_PUBLIC_V6 = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "::/96",  # unspecified, loopback, deprecated IPv4-compatible forms
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments, Teredo
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique local (also AWS's metadata fd00:ec2::254)
        "fe80::/10",  # link-local
        "fec0::/10",  # deprecated site-local
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address that an IPv4-mapped, NAT64 or 6to4 address leads to, if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def is_public(address: IPAddress) -> bool:
    """True only for a globally routable unicast address (IPv4 forms judged as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return is_public(inner)
        ranges: tuple[IPNetwork, ...] = _NON_PUBLIC_V6
    else:
        ranges = _NON_PUBLIC_V4
    if any(address in net for net in ranges):
        return False
    # The library's flags as a second opinion: whatever either list calls special is out.
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_link_local
    )


def in_networks(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    """Whether ``address`` (an IPv4-mapped one as its IPv4 form) is inside any of them."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in networks)


def parse_networks(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs (host bits allowed) as networks; a bad one raises ``ValueError`` naming it.

    The kit's one CIDR parser: settings, the HTTP policy, the proxy middleware and the
    image fetcher all go through it. Blank entries (``a, ,b``) are skipped.
    """
    out: list[IPNetwork] = []
    for cidr in cidrs:
        if not cidr.strip():
            continue
        try:
            out.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP network (CIDR): {cidr!r}") from None
    return tuple(out)
