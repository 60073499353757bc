# SPDX-License-Identifier: Apache-2.0
"""API-key authentication for REST: a valid key, or 401 problem+json.

The key comes in ``X-API-Key`` or ``Authorization: Bearer``; ``genkit_endpoints.security.keys``
decides which one counts and compares it in constant time. The caller's principal is
set in ``principal_var`` for the request, so flows read ``current_principal()`` and never
the header. Both headers are removed from the scope handed on: the raw key cannot reach
a framework request object, a prompt, a log or a trace from below this layer.

Exempt paths (health, readiness) and ``OPTIONS`` pass without a key: CORS preflights are
answered before auth and never carry credentials. A key in the query string is refused
even when a header carries a valid one, so clients learn to stop putting keys in URLs
(which end up in proxy logs and browser history); we never log the query string.
"""

from __future__ import annotations

from collections.abc import Iterable

from genkit_endpoints.core.context import note_principal, principal_var
from genkit_endpoints.core.errors import Unauthenticated
from genkit_endpoints.http.middleware.errors import request_path, send_problem
from genkit_endpoints.http.types import ASGIApp, Receive, Scope, Send
from genkit_endpoints.security.keys import (
    INVALID_KEY,
    KEY_IN_URL,
    MAX_KEY_BYTES,
    ApiKeyring,
    choose_key,
)

__all__ = ["QUERY_KEY_PARAMS", "WWW_AUTHENTICATE", "ApiKeyMiddleware"]

WWW_AUTHENTICATE = 'Bearer realm="genkit-endpoints"'
QUERY_KEY_PARAMS = frozenset({b"api_key", b"apikey", b"key", b"token", b"access_token"})
_API_KEY = b"x-api-key"
_AUTHORIZATION = b"authorization"


def _key_in_query(query: bytes) -> bool:
    for pair in query.split(b"&"):
        name = pair.split(b"=", 1)[0].strip().lower()
        if name in QUERY_KEY_PARAMS:
            return True
    return False


class ApiKeyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        keyring: ApiKeyring,
        *,
        exempt_paths: Iterable[str] = frozenset(),
    ) -> None:
        self.app = app
        self.keyring = keyring
        self.exempt_paths = frozenset(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope["path"] in self.exempt_paths or scope.get("method") == "OPTIONS":
            await self.app(scope, receive, send)
            return

        api_keys: list[bytes] = []
        authorizations: list[bytes] = []
        kept: list[tuple[bytes, bytes]] = []
        for name, value in scope["headers"]:
            if name == _API_KEY:
                api_keys.append(value)
            elif name == _AUTHORIZATION:
                authorizations.append(value)
            else:
                kept.append((name, value))

        query: bytes = scope.get("query_string", b"")
        if query and _key_in_query(query):
            await self._refuse(scope, send, KEY_IN_URL)
            return
        chosen = choose_key(api_keys, authorizations)
        if isinstance(chosen, str):
            await self._refuse(scope, send, chosen)
            return
        principal = self.keyring.authenticate(chosen) if len(chosen) <= MAX_KEY_BYTES else None
        if principal is None:
            await self._refuse(scope, send, INVALID_KEY)
            return

        # In place, not a copy: outer layers read what the framework adds to the scope
        # (the matched route, for the access log).
        scope["headers"] = kept
        note_principal(principal.name)
        token = principal_var.set(principal)
        try:
            await self.app(scope, receive, send)
        finally:
            principal_var.reset(token)

    async def _refuse(self, scope: Scope, send: Send, detail: str) -> None:
        if scope["type"] == "websocket":
            # Closing before accept makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": 1008})
            return
        err = Unauthenticated(detail, headers={"www-authenticate": WWW_AUTHENTICATE})
        await send_problem(send, err, request_path(scope))
