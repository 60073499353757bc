# SPDX-License-Identifier: Apache-2.0
"""Client identity behind proxies: believe ``X-Forwarded-*`` only from trusted peers.

The client is the socket peer, unless that peer is in ``TRUSTED_PROXIES``; then it is the
right-most ``X-Forwarded-For`` hop that is not itself a trusted proxy. Hops to the left of
it were written by the client and can say anything, so taking the left-most entry (a
common mistake) would let a client choose its own rate-limit key. A trusted peer's
``X-Forwarded-Proto`` (right-most value) becomes ``scope["scheme"]``, which turns on HSTS
for requests that reached the proxy over https.

Only installed when trusted proxies are configured; without it the servers' own
proxy-header handling is off too, so ``X-Forwarded-For`` from anyone is ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from genkit_endpoints.http.types import ASGIApp, Receive, Scope, Send
from genkit_endpoints.security.addresses import IPNetwork, in_networks, parse_networks

__all__ = ["ProxyHeadersMiddleware", "TrustedProxies", "parse_networks"]

_XFF = b"x-forwarded-for"
_XFP = b"x-forwarded-proto"


class TrustedProxies:
    """Membership test with a small cache: the same few peers ask again and again."""

    def __init__(self, networks: Iterable[IPNetwork]) -> None:
        self.networks = tuple(networks)
        self.contains = lru_cache(maxsize=1024)(self._contains)

    def _contains(self, host: str) -> bool:
        try:
            addr = ipaddress.ip_address(host.strip().strip("[]"))
        except ValueError:
            return False
        return in_networks(addr, self.networks)

    def client_from(self, peer: str, forwarded_for: list[str]) -> str:
        """The client address given the socket ``peer`` and the XFF hops, left to right."""
        if not self.contains(peer):
            return peer
        client = peer
        for hop in reversed(forwarded_for):
            if not _valid_address(hop):
                break  # garbage at this position: stop at the last trustworthy hop
            client = hop
            if not self.contains(hop):
                return hop
        return client


def _valid_address(hop: str) -> bool:
    try:
        ipaddress.ip_address(hop.strip("[]"))
    except ValueError:
        return False
    return True


class ProxyHeadersMiddleware:
    def __init__(self, app: ASGIApp, trusted: TrustedProxies) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            client = scope.get("client")
            if client and self.trusted.contains(client[0]):
                hops: list[str] = []
                proto = None
                for name, value in scope["headers"]:
                    if name == _XFF:
                        hops += (h.strip() for h in value.decode("latin-1").split(","))
                    elif name == _XFP:
                        proto = value.decode("latin-1").rsplit(",", 1)[-1].strip().lower()
                if hops:
                    host = self.trusted.client_from(client[0], [h for h in hops if h])
                    scope["client"] = (host.strip("[]"), 0)
                if proto in ("http", "https"):
                    scope["scheme"] = proto
        await self.app(scope, receive, send)
