# SPDX-License-Identifier: Apache-2.0
"""The server's own per-call interceptors as one: request id, access log, auth, rate limit.

``create_grpc_server`` would otherwise chain ``RequestIdInterceptor``,
``LoggingInterceptor``, ``AuthInterceptor`` and ``RateLimitInterceptor``. Each of them
is a link gRPC awaits on every lookup, and each wraps the handler it found in a fresh
coroutine layer for every call. On a call that does little (Health), those hops, the
handler objects rebuilt per call and the repeated metadata scans are a large share of
what the call costs. ``FusedInterceptor`` does the same work in the same order from one
coroutine per call:

1. bind the request id (the caller's well-formed ``x-request-id`` or a new one) and
   put it in the trailing metadata;
2. start the call's record, its metrics and its clock;
3. authenticate (unless the method is exempt) and bind the principal;
4. spend one request from the rate limiter (unless exempt);
5. run the handler's behaviour;
6. report the call — metrics, access line, audit line — with the status it ended with.

The outcome is the same as the chain's, down to status codes, trailers, log and audit
lines and metrics; the separate classes stay for anyone who composes their own server.

The wrapped handler is built once per method and reused while the lookup keeps
returning the same handler: everything that is per call (the metadata, the id, the
principal) is read from the call's context when it runs, so nothing needs to be
captured at lookup time.
"""

from __future__ import annotations

import inspect
import os
import time
from typing import TYPE_CHECKING, Any

import grpc

from genkit_endpoints.core.context import (
    RequestRecord,
    principal_var,
    record_var,
    request_id_var,
)
from genkit_endpoints.core.errors import Unauthenticated
from genkit_endpoints.grpc.auth import API_KEY, AUTHORIZATION, AuthInterceptor
from genkit_endpoints.grpc.interceptors import (
    _FACTORIES,
    _KINDS,
    METADATA_KEY,
    Behaviour,
    Continuation,
    LoggingInterceptor,
    _split,
    as_bytes,
    client_request_id,
    ended_code,
    request_id_of,
    run_behaviour,
)
from genkit_endpoints.grpc.servicer import abort_with_error

if TYPE_CHECKING:
    from genkit_endpoints.grpc.ratelimit import RateLimitInterceptor
    from genkit_endpoints.policies.ratelimit import RateLimiter
    from genkit_endpoints.security.keys import ApiKeyring
    from genkit_endpoints.telemetry.audit import AuditLog
    from genkit_endpoints.telemetry.observer import Observer

__all__ = ["FusedInterceptor", "policy_interceptor"]

# Methods whose wrapped handler is kept. A generic handler may serve any name a caller
# sends; past this many, handlers are wrapped per call instead of cached without bound.
_MAX_CACHED = 256


class FusedInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """``RequestIdInterceptor``, ``logging``, then ``auth`` and ``rate_limit`` (each
    optional), in that order, as one interceptor.

    The policies are the configured interceptor objects themselves: their exemptions,
    checks and settings apply unchanged, only the per-call plumbing is shared.
    """

    def __init__(
        self,
        logging: LoggingInterceptor,
        *,
        auth: AuthInterceptor | None = None,
        rate_limit: RateLimitInterceptor | None = None,
    ) -> None:
        self._logging = logging
        self._auth = auth
        self._rate_limit = rate_limit
        # method -> (the handler the lookup returned, its wrapped form)
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None:  # gRPC answers UNIMPLEMENTED without running any of our code
            self._logging.unimplemented(method)
            return None
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        if len(self._wrapped) < _MAX_CACHED or method in self._wrapped:
            self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        kind = next((k for k in _KINDS if getattr(handler, k) is not None), None)
        if kind is None:
            return handler
        behaviour: Behaviour = getattr(handler, kind)
        serve = self._serve(method, behaviour)
        # Rebuilt with grpc's public factory for its kind (see ``wrap_handler``).
        return _FACTORIES[kind](
            serve,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _serve(self, method: str, behaviour: Behaviour) -> Behaviour:  # noqa: PLR0915 - see serve
        # Everything that depends only on the method is settled here, once: the halves of
        # its name for the metrics, which policies apply, how to run the behaviour.
        service, name = _split(method)
        report = self._logging.finished
        observer = self._logging.observer
        auth = self._auth if self._auth is not None and self._auth.applies_to(method) else None
        rate_limit = self._rate_limit
        limiter = (
            rate_limit.limiter if rate_limit is not None and rate_limit.applies_to(method) else None
        )
        if limiter is not None:
            from genkit_endpoints.grpc.ratelimit import admit  # noqa: PLC0415 - with a limiter only
        # A coroutine function is awaited directly; anything else (async generators, plain
        # functions) goes through ``run_behaviour``, which drives every style.
        direct = inspect.iscoroutinefunction(behaviour)

        # Every step of a call in one coroutine, deliberately: each step split out into a
        # coroutine of its own would be one more hop per call, which is what this saves.
        async def serve(request: Any, ctx: grpc.aio.ServicerContext) -> Any:  # noqa: PLR0912
            metadata = ctx.invocation_metadata()
            if auth is None:
                rid = client_request_id(metadata)
            else:
                rid, api_keys, authorizations = _scan(metadata)
            if rid is None:
                rid = os.urandom(16).hex()  # same shape as the REST middleware's ids
            rid_token = request_id_var.set(rid)
            try:
                ctx.set_trailing_metadata(((METADATA_KEY, rid),))
                started = time.perf_counter()
                code = "UNKNOWN"  # what gRPC sends for an exception nothing turned into a status
                record = RequestRecord()
                record_token = record_var.set(record)
                observer.rpc_started()
                principal_token = None
                try:
                    if auth is not None:
                        principal = auth.authenticate(ctx, api_keys, authorizations)
                        if isinstance(principal, str):
                            await abort_with_error(ctx, Unauthenticated(principal))
                            return None  # pragma: no cover - abort always raises
                        record.principal = principal.name  # the record is the current one
                        principal_token = principal_var.set(principal)
                    if limiter is not None:
                        await admit(limiter, ctx)
                    if direct:
                        result = await behaviour(request, ctx)
                    else:
                        result = await run_behaviour(behaviour, request, ctx)
                except BaseException as exc:
                    code = ended_code(ctx, exc)
                    raise
                else:
                    code = ended_code(ctx, None)
                    return result
                finally:
                    if principal_token is not None:
                        principal_var.reset(principal_token)
                    record_var.reset(record_token)
                    report(ctx, method, service, name, code, started, record)
            finally:
                request_id_var.reset(rid_token)

        return serve


def policy_interceptor(
    service: str,
    *,
    health_method: str | None,
    api_keys: ApiKeyring | None,
    client_certs: bool,
    rate_limiter: RateLimiter | None,
    observer: Observer,
    audit: AuditLog | None,
    access_logger: Any,
) -> FusedInterceptor:
    """The interceptor every call of ``service`` runs through, on the native server and
    over gRPC-Web alike: request id, access line and metrics, then (with keys or client
    certificates) auth, then (with a limiter) the rate limit. ``health_method`` is exempt
    from auth and the limit, like the standard health and reflection services."""
    exempt = (f"/{service}/{health_method}",) if health_method else ()
    auth = None
    if api_keys is not None or client_certs:
        auth = AuthInterceptor(api_keys, client_certs=client_certs, exempt_methods=exempt)
    limit = None
    if rate_limiter is not None:
        from genkit_endpoints.grpc.ratelimit import RateLimitInterceptor  # noqa: PLC0415

        limit = RateLimitInterceptor(rate_limiter, exempt_methods=exempt)
    return FusedInterceptor(
        LoggingInterceptor(access_logger, observer=observer, audit=audit),
        auth=auth,
        rate_limit=limit,
    )


def _scan(metadata: Any) -> tuple[str | None, list[bytes], list[bytes]]:
    """One pass over the metadata: the caller's request id (as ``client_request_id``
    reads it) and the ``x-api-key`` and ``authorization`` values, in order."""
    api_keys: list[bytes] = []
    authorizations: list[bytes] = []
    raw_id: str | bytes | None = None
    for key, value in metadata or ():
        if key == METADATA_KEY:
            if raw_id is None:  # the first one decides, as in ``client_request_id``
                raw_id = value
        elif key == API_KEY:
            api_keys.append(as_bytes(value))
        elif key == AUTHORIZATION:
            authorizations.append(as_bytes(value))
    return (None if raw_id is None else request_id_of(raw_id)), api_keys, authorizations
