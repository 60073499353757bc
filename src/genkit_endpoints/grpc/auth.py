# SPDX-License-Identifier: Apache-2.0
"""gRPC authentication: a verified client certificate or an API key in metadata.

The same rules as REST (``genkit_endpoints.security.keys``): the key travels in ``x-api-key`` or
``authorization: Bearer``, one key in one header, compared in constant time; a failure
ends the call with UNAUTHENTICATED and a sentence that reveals nothing about the keys.

With mutual TLS (``client_certs=True``) the server has already required and verified a
client certificate during the handshake, so the certificate *is* the authentication: its
subject becomes the principal (method ``mtls``) and metadata keys are not consulted.
API keys authenticate the calls that arrive without a verified certificate, i.e. on a
plaintext or server-only-TLS port. ``grpc.health.v1.Health``, reflection and the
service's own health RPC are exempt, like ``/health`` and ``/ready`` on REST.

``intercept_service`` only finds the handler; the call runs after it returned. So the
check and ``principal_var`` live inside the wrapped behaviour (``wrap_handler``), set for
the whole call and reset after it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc

from genkit_endpoints.core.context import note_principal, principal_var
from genkit_endpoints.core.errors import Unauthenticated
from genkit_endpoints.grpc.interceptors import (
    Around,
    Behaviour,
    GuardInterceptor,
    as_bytes,
    run_behaviour,
)
from genkit_endpoints.grpc.servicer import abort_with_error
from genkit_endpoints.security.keys import INVALID_KEY, ApiKeyring, Principal, choose_key

__all__ = ["AuthInterceptor", "principal_from_certificate"]

API_KEY = "x-api-key"  # the metadata keys a caller's API key may travel in
AUTHORIZATION = "authorization"
_NO_CERTIFICATE = "A client certificate is required."


def principal_from_certificate(auth_context: dict[str, list[bytes]]) -> Principal | None:
    """The verified peer certificate's subject (``CN=…,O=…``), or None without one."""
    if auth_context.get("transport_security_type") != [b"ssl"]:
        return None
    values = auth_context.get("x509_subject") or auth_context.get("x509_common_name")
    if not values or not values[0]:
        return None
    return Principal(values[0].decode("utf-8", "replace"), "mtls")


class AuthInterceptor(GuardInterceptor):
    """Require a principal for every call but the exempt ones.

    Place it after the request-id and logging interceptors (rejections are logged with
    the request id and status) and before rate limiting (which keys by principal).
    """

    def __init__(
        self,
        keyring: ApiKeyring | None,
        *,
        client_certs: bool = False,
        exempt_methods: Iterable[str] = (),
    ) -> None:
        if keyring is None and not client_certs:
            raise ValueError("gRPC auth needs API keys, client certificates (mutual TLS), or both")
        super().__init__(exempt_methods=exempt_methods)
        self._keyring = keyring
        self._client_certs = client_certs

    def around_for(self, details: grpc.HandlerCallDetails) -> Around:
        metadata = details.invocation_metadata

        async def around(behaviour: Behaviour, request: Any, ctx: grpc.aio.ServicerContext) -> Any:
            principal = self._authenticate(ctx, metadata)
            if isinstance(principal, str):
                await abort_with_error(ctx, Unauthenticated(principal))
                return None  # pragma: no cover - abort always raises
            note_principal(principal.name)
            token = principal_var.set(principal)
            try:
                return await run_behaviour(behaviour, request, ctx)
            finally:
                principal_var.reset(token)

        return around

    def _authenticate(self, ctx: grpc.aio.ServicerContext, metadata: Any) -> Principal | str:
        """The caller's principal, or the client-facing reason there is none."""
        api_keys: list[bytes] = []
        authorizations: list[bytes] = []
        for key, value in metadata or ():
            if key == API_KEY:
                api_keys.append(as_bytes(value))
            elif key == AUTHORIZATION:
                authorizations.append(as_bytes(value))
        return self.authenticate(ctx, api_keys, authorizations)

    def authenticate(
        self, ctx: grpc.aio.ServicerContext, api_keys: list[bytes], authorizations: list[bytes]
    ) -> Principal | str:
        """The caller's principal, or the client-facing reason there is none.

        ``api_keys`` and ``authorizations`` are the call's ``x-api-key`` and
        ``authorization`` metadata values, in order, for a caller that scans the metadata
        once for several purposes.
        """
        if self._client_certs:
            principal = principal_from_certificate(ctx.auth_context())
            if principal is not None:
                return principal
        if self._keyring is None:
            return _NO_CERTIFICATE
        chosen = choose_key(api_keys, authorizations)
        if isinstance(chosen, str):
            return chosen
        return self._keyring.authenticate(chosen) or INVALID_KEY
