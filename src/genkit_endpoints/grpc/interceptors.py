# SPDX-License-Identifier: Apache-2.0
"""gRPC server interceptors: request id, and per RPC one access-log event, its metrics and
its audit line.

``intercept_service`` only *finds* a handler; the RPC runs later, after it returned. An
interceptor that timed or scoped that lookup would log ~0 ms for every call. So both
interceptors here wrap the handler's behaviour (``wrap_handler``) and do their work
around the whole call — for streams, around every message written until the status is
sent. Async-generator behaviours (reflection, for one) are driven through
``context.write`` so one wrapper serves all four RPC kinds.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import grpc
import structlog

from genkit_endpoints.core.context import (
    RequestRecord,
    record_var,
    request_id_var,
    valid_request_id,
)
from genkit_endpoints.telemetry.audit import AuditLog
from genkit_endpoints.telemetry.observer import NO_OBSERVER, Observer

__all__ = [
    "EXEMPT_SERVICES",
    "METADATA_KEY",
    "GuardInterceptor",
    "LoggingInterceptor",
    "RequestIdInterceptor",
    "StreamsAsGenerators",
    "wrap_handler",
]

METADATA_KEY = "x-request-id"
_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
_FACTORIES: dict[str, Callable[..., grpc.RpcMethodHandler]] = {
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}

Behaviour = Callable[[Any, grpc.aio.ServicerContext], Any]
Around = Callable[[Behaviour, Any, grpc.aio.ServicerContext], Awaitable[Any]]
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]

OTHER = "_OTHER"  # the metric label of a method this server does not serve


def _split(method: str) -> tuple[str, str]:
    # "/package.Service/Method" -> ("package.Service", "Method")
    service, _, name = method.lstrip("/").partition("/")
    return service, name


def _peer_ip(context: grpc.aio.ServicerContext) -> str | None:
    peer: str = context.peer() or ""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return rest or None


async def run_behaviour(
    behaviour: Behaviour, request: Any, context: grpc.aio.ServicerContext
) -> Any:
    """Run a handler behaviour of any style to completion inside the current task."""
    result = behaviour(request, context)
    if inspect.isasyncgen(result):
        async with contextlib.aclosing(result) as items:
            async for item in items:
                await context.write(item)
        return None
    if inspect.isawaitable(result):
        return await result
    return result


def wrap_handler(handler: grpc.RpcMethodHandler, around: Around) -> grpc.RpcMethodHandler:
    """The same handler, its behaviour run through ``around(behaviour, request, context)``."""
    kind = next((k for k in _KINDS if getattr(handler, k) is not None), None)
    if kind is None:
        return handler
    behaviour: Behaviour = getattr(handler, kind)

    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await around(behaviour, request, context)

    # Rebuilt with grpc's public factory for its kind, not copied with ``_replace``: that
    # handlers are named tuples is grpc's private detail.
    return _FACTORIES[kind](
        wrapped,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class StreamsAsGenerators(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Present every response-streaming behaviour as an async generator.

    The interceptors here run each behaviour as a coroutine that sends its messages with
    ``context.write`` (``wrap_handler``). OpenTelemetry's server interceptor instead
    iterates a streaming behaviour with ``async for``, and fails on a coroutine. Placed
    directly inside it, this turns the coroutine into an async generator that runs it to
    the end and yields nothing itself: the messages still leave through ``context.write``,
    inside the span.
    """

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None or not handler.response_streaming:
            return handler
        kind = "stream_stream" if handler.request_streaming else "unary_stream"
        behaviour: Behaviour = getattr(handler, kind)

        async def generator(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await run_behaviour(behaviour, request, context)
            # Nothing to yield (the writes went out already); the loop makes this function
            # an async generator.
            nothing: tuple[Any, ...] = ()
            for message in nothing:
                yield message

        return _FACTORIES[kind](
            generator,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


# Infrastructure services no policy applies to: probes and tooling must always answer.
EXEMPT_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


class GuardInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Base of the policy interceptors (auth, rate limit): ``around`` runs around every
    RPC except the exempt ones, inside the task that serves the call."""

    def __init__(self, *, exempt_methods: Iterable[str] = ()) -> None:
        self._exempt = frozenset(exempt_methods)

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None or not self.applies_to(handler_call_details.method):
            return handler
        return wrap_handler(handler, self.around_for(handler_call_details))

    def applies_to(self, method: str) -> bool:
        """Whether the policy runs for ``method`` (``/package.Service/Method``)."""
        return method not in self._exempt and not method.startswith(EXEMPT_SERVICES)

    def around_for(self, details: grpc.HandlerCallDetails) -> Around:
        raise NotImplementedError


def as_bytes(value: str | bytes) -> bytes:
    """A metadata value as bytes (gRPC hands over text, or bytes for ``-bin`` keys)."""
    return value.encode("utf-8", "replace") if isinstance(value, str) else value


def request_id_of(value: str | bytes) -> str | None:
    """An ``x-request-id`` value when it passes the REST rule, else None."""
    raw = as_bytes(value)
    return raw.decode("ascii") if valid_request_id(raw) else None


def client_request_id(metadata: Any) -> str | None:
    """The caller's ``x-request-id`` (the first one) when it passes the REST rule, else None."""
    for key, value in metadata or ():
        if key == METADATA_KEY:
            return request_id_of(value)
    return None


class RequestIdInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Accept a well-formed ``x-request-id`` or make one; bind it; echo it in trailing metadata.

    Trailing, not initial: trailers travel with the status, while sending initial metadata
    is one more write per call, a visible share of a cheap call such as Health
    (``bench/`` measures it).
    """

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        rid = client_request_id(handler_call_details.invocation_metadata)
        if rid is None:
            rid = os.urandom(16).hex()  # same shape as the REST middleware's ids

        async def around(behaviour: Behaviour, request: Any, ctx: grpc.aio.ServicerContext) -> Any:
            token = request_id_var.set(rid)
            try:
                ctx.set_trailing_metadata(((METADATA_KEY, rid),))
                return await run_behaviour(behaviour, request, ctx)
            finally:
                request_id_var.reset(token)

        return wrap_handler(handler, around)


def code_name(context: grpc.aio.ServicerContext) -> str | None:
    """The name of the status code the handler set (``set_code``, ``abort``), or None."""
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else None


# The server's copy of a deadline starts when the request arrived, the client's when it
# was sent: the client's fires first, and the cancellation it sends can reach the server
# a moment before the server's own copy expires. Within this much of the deadline, a
# cancellation is the deadline's.
_DEADLINE_SLACK_S = 0.1


def cancelled_code(context: grpc.aio.ServicerContext) -> str:
    """The status a cancelled handler ends with.

    gRPC cancels the handler when the client cancels or the call's deadline passes.
    """
    remaining = context.time_remaining()
    expired = remaining is not None and remaining <= _DEADLINE_SLACK_S
    return "DEADLINE_EXCEEDED" if expired else "CANCELLED"


def ended_code(context: grpc.aio.ServicerContext, error: BaseException | None) -> str:
    """The status a handler's call ended with: ``error`` is what it raised (None: it
    returned). An abort sets the code before raising; an exception nothing turned into a
    status is what gRPC sends as UNKNOWN."""
    if isinstance(error, asyncio.CancelledError):
        return cancelled_code(context)
    return code_name(context) or ("OK" if error is None else "UNKNOWN")


class LoggingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Per RPC: one ``grpc_request`` event (method, status code name, duration, request id,
    principal — None when the call was not authenticated), the RPC metrics for
    ``observer`` and the audit line (``audit``, None: off). It creates the RPC's
    ``RequestRecord`` for the inner interceptors and the servicer to fill.

    Place it after ``RequestIdInterceptor`` so the id is bound when the event is logged.
    """

    def __init__(
        self,
        logger: Any = None,
        event: str = "grpc_request",
        *,
        observer: Observer = NO_OBSERVER,
        audit: AuditLog | None = None,
    ) -> None:
        self._log = logger if logger is not None else structlog.get_logger("genkit_endpoints.grpc")
        self._event = event
        self._observer = observer
        self._audit = audit

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        handler = await continuation(handler_call_details)
        if handler is None:  # gRPC answers UNIMPLEMENTED without running any of our code
            self.unimplemented(method)
            return None
        service, name = _split(method)

        async def around(behaviour: Behaviour, request: Any, ctx: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = "UNKNOWN"
            record = RequestRecord()
            token = record_var.set(record)
            self._observer.rpc_started()
            try:
                result = await run_behaviour(behaviour, request, ctx)
            except BaseException as exc:
                code = ended_code(ctx, exc)
                raise
            else:
                code = ended_code(ctx, None)
                return result
            finally:
                record_var.reset(token)
                self.finished(ctx, method, service, name, code, started, record)

        return wrap_handler(handler, around)

    def unimplemented(self, method: str) -> None:
        """Report a call to a method no handler serves (gRPC answered UNIMPLEMENTED)."""
        # A name the caller chose: logged, but never a metric label or audit route.
        self._observer.rpc_started()
        self._observer.rpc_finished(OTHER, OTHER, "UNIMPLEMENTED", 0.0)
        self._emit(method, "UNIMPLEMENTED", 0.0)
        if self._audit is not None:  # no context yet: the peer's address is unknown
            self._audit.rpc(
                RequestRecord(), method=OTHER, code="UNIMPLEMENTED", seconds=0.0, client_ip=None
            )

    def finished(  # noqa: PLR0917 - the facts of one call
        self,
        ctx: grpc.aio.ServicerContext,
        method: str,
        service: str,
        name: str,
        code: str,
        started: float,
        record: RequestRecord,
    ) -> None:
        """Report a served call that ended with ``code``: metrics, access line, audit line.

        ``started`` is its ``time.perf_counter()`` at the start, ``service`` and ``name``
        the two halves of ``method``.
        """
        seconds = time.perf_counter() - started
        self._observer.rpc_finished(service, name, code, seconds)
        self._emit(method, code, seconds * 1000, record.principal)
        if self._audit is not None:
            self._audit.rpc(
                record, method=method, code=code, seconds=seconds, client_ip=_peer_ip(ctx)
            )

    @property
    def observer(self) -> Observer:
        return self._observer

    def _emit(
        self, method: str, code: str, duration_ms: float, principal: str | None = None
    ) -> None:
        self._log.info(
            self._event,
            method=method,
            code=code,
            duration_ms=round(duration_ms, 3),
            request_id=request_id_var.get(),
            principal=principal,
        )
