# SPDX-License-Identifier: Apache-2.0
"""Host header checks: well-formed always, and on the allowlist when ``TRUSTED_HOSTS`` is set.

A malformed ``Host`` (spaces, a path, userinfo, several values) is a 400 on every
framework — Litestar refused it and FastAPI/Quart accepted it, so the kit decides, and
every framework answers alike. With an allowlist, any other host is a 400 too: it stops
DNS-rebinding and host-header injection into absolute URLs. Entries are exact host names
or ``*.example.com`` (any subdomain, not the apex); the port is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from genkit_endpoints.core.errors import BadRequest
from genkit_endpoints.http.middleware.errors import request_path, send_problem
from genkit_endpoints.http.types import ASGIApp, Receive, Scope, Send

_HOST = b"host"
# reg-name or IPv4, or a bracketed IPv6 literal; optional port (RFC 9110 section 7.2).
# Used with fullmatch: `$` would also accept a trailing "\n".
_WELL_FORMED = re.compile(rb"(?:[A-Za-z0-9._~!$&'()*+,;=%-]*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{0,5})?")


class HostNotAllowed(BadRequest):
    default_detail = "The Host header is not allowed."


class MalformedHost(BadRequest):
    default_detail = "The Host header is malformed."


class TrustedHostMiddleware:
    def __init__(self, app: ASGIApp, hosts: Iterable[str] = ()) -> None:
        self.app = app
        # "[::1]" and "::1" both name the IPv6 literal compared below without brackets.
        names = [h.strip().lower().removeprefix("[").removesuffix("]") for h in hosts if h.strip()]
        if "*" in names:
            names = []  # "*" means any host: only the well-formedness check remains
        self.exact = frozenset(n for n in names if not n.startswith("*."))
        self.suffixes = tuple(n[1:] for n in names if n.startswith("*."))
        self.enforce = bool(names)
        self.seen: dict[bytes, bool] = {}  # bounded below: hosts are few in practice

    def allowed(self, host: bytes) -> bool:
        verdict = self.seen.get(host)
        if verdict is None:
            verdict = self._decide(host)
            if len(self.seen) < 256:  # attacker-chosen hosts must not grow this
                self.seen[host] = verdict
        return verdict

    def _decide(self, host: bytes) -> bool:
        if not _WELL_FORMED.fullmatch(host):
            return False
        if not self.enforce:
            return True
        text = host.decode("ascii").lower()
        name = text[1 : text.index("]")] if text.startswith("[") else text.rsplit(":", 1)[0]
        return name in self.exact or any(
            name.endswith(s) and len(name) > len(s) for s in self.suffixes
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = None
        count = 0
        for name, value in scope["headers"]:
            if name == _HOST:
                host = value
                count += 1
        # HTTP/1.0 may omit Host; only an allowlist makes it required.
        ok = not self.enforce if host is None else count == 1 and self.allowed(host)
        if ok:
            await self.app(scope, receive, send)
            return
        malformed = count > 1 or (host is not None and not _WELL_FORMED.fullmatch(host))
        err = MalformedHost() if malformed else HostNotAllowed()
        await send_problem(send, err, request_path(scope))
