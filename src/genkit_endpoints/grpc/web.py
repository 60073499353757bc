# SPDX-License-Identifier: Apache-2.0
"""gRPC-Web on the REST port: a pure-ASGI layer that serves the gRPC service's methods.

Browsers cannot speak gRPC (no HTTP/2 trailers, no control over framing), so gRPC-Web
carries the same messages over a plain POST to ``/<package.Service>/<Method>``. This
layer answers those requests itself, in process, with the handlers the route table
generates for the native server, run through the same interceptor (request id, access
line and metrics, API-key auth, rate limit) — so a browser gets the statuses, trailers,
limits and log lines a native client gets, without a proxy. Everything else passes
through to the framework untouched.

The handlers see a ``WebCall`` (``grpc.web_call``) as their context: the request's
headers as metadata (the HTTP layer's request id replacing the caller's, so both log
lines carry one id), the client address the proxy layer settled as the peer,
``grpc-timeout`` as the deadline, a disconnect as a cancellation. The request body is
read whole (one message; ``grpc.web_framing`` parses it), and a body that is not one
well-formed, uncompressed message is answered with the protocol's status before any
handler runs.

Limits: unary and server-streaming methods only (a browser cannot stream a request
body), no message compression, no mutual-TLS principal (the REST port has no client
certificates), and a server drain does not cut these calls the way it cuts native ones:
they are HTTP requests, and the HTTP server's own graceful shutdown waits for them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

import grpc
import structlog

from genkit_endpoints.core.context import current_request_id
from genkit_endpoints.core.crash import report_unexpected
from genkit_endpoints.core.grpc_wire import is_grpc_web
from genkit_endpoints.grpc.fused import policy_interceptor
from genkit_endpoints.grpc.interceptors import METADATA_KEY
from genkit_endpoints.grpc.servicer import build_method_handlers
from genkit_endpoints.grpc.web_call import WebCall
from genkit_endpoints.grpc.web_framing import (
    COMPRESSED,
    TRAILERS,
    FramingError,
    decode_text,
    parse_timeout,
    split_frames,
)
from genkit_endpoints.telemetry.observer import NO_OBSERVER, Observer

if TYPE_CHECKING:
    from google.protobuf.descriptor import ServiceDescriptor

    from genkit_endpoints.core.routes import RouteTable, RunContext
    from genkit_endpoints.policies.ratelimit import RateLimiter
    from genkit_endpoints.security.keys import ApiKeyring
    from genkit_endpoints.telemetry.audit import AuditLog

__all__ = ["GrpcWebMiddleware", "grpc_web_layer"]

_log = structlog.get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_CONTENT_TYPE = b"content-type"
# Request headers that are HTTP's or gRPC-Web's own, not the caller's metadata.
_NOT_METADATA = frozenset(
    {
        "content-type",
        "content-length",
        "host",
        "connection",
        "te",
        "accept",
        "accept-encoding",
        "origin",
        "referer",
        "grpc-timeout",
        "grpc-encoding",
        "grpc-accept-encoding",
        "x-grpc-web",
        "x-user-agent",
        METADATA_KEY,
    }
)


class _Details(grpc.HandlerCallDetails):  # type: ignore[misc]
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata: tuple[tuple[str, str], ...] = ()


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    if not client:
        return "unknown"
    host, port = client[0], client[1]
    return f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"


def _metadata(scope: Scope) -> tuple[list[tuple[str, str | bytes]], dict[str, str]]:
    """The caller's metadata, and the gRPC-Web headers the layer reads itself."""
    metadata: list[tuple[str, str | bytes]] = []
    own: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name in _NOT_METADATA:
            own.setdefault(name, value)
        elif name.endswith("-bin"):
            with contextlib.suppress(ValueError):
                metadata.append((name, base64.b64decode(value + "==")))
        else:
            metadata.append((name, value))
    rid = current_request_id()
    if rid:  # the id the HTTP layer accepted or made: one id for both log lines
        metadata.append((METADATA_KEY, rid))
    return metadata, own


class GrpcWebMiddleware:
    """Serve gRPC-Web calls for ``handlers`` (full method path → handler) from the app's
    HTTP port; ``interceptor`` (the native server's own) wraps every handler.

    ``max_message_bytes`` bounds the request message, as the native server's receive
    limit does (RESOURCE_EXHAUSTED past it).
    """

    def __init__(
        self,
        app: ASGIApp,
        handlers: Mapping[str, grpc.RpcMethodHandler],
        interceptor: grpc.aio.ServerInterceptor,
        *,
        max_message_bytes: int,
    ) -> None:
        self.app = app
        self._handlers = dict(handlers)
        self._interceptor = interceptor
        self._max = max_message_bytes
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not is_grpc_web(scope):
            await self.app(scope, receive, send)
            return
        content_type = next(v for k, v in scope["headers"] if k == _CONTENT_TYPE)
        kind, _, codec = content_type.partition(b";")[0].strip().lower().partition(b"+")
        if kind not in (b"application/grpc-web", b"application/grpc-web-text") or codec not in (
            b"",
            b"proto",
        ):
            await _unsupported(send)
            return
        text = kind == b"application/grpc-web-text"
        metadata, own = _metadata(scope)
        loop = asyncio.get_running_loop()
        call = WebCall(
            send,
            text=text,
            content_type=kind + b"+proto",
            metadata=metadata,
            peer=_peer(scope),
            deadline=None,
        )
        try:
            if "grpc-timeout" in own:
                call.deadline = loop.time() + _timeout(own["grpc-timeout"])
            body = await _read_body(receive)
            if body is None:
                return  # the client left before its request was complete
            payload = _request_message(body, text, own.get("grpc-encoding"), self._max)
        except _Refusal as refusal:
            call.set_code(refusal.code)
            call.set_details(refusal.details)
            await call.finish()
            return
        handler = await self._handler(scope["path"])
        if handler is None:
            call.set_code(grpc.StatusCode.UNIMPLEMENTED)
            call.set_details(f"Method not found: {scope['path']}")
            await call.finish()
            return
        await self._run(call, handler, payload, receive, scope["path"])

    async def _handler(self, method: str) -> grpc.RpcMethodHandler | None:
        wrapped = self._wrapped.get(method)
        if wrapped is not None:
            return wrapped
        found = self._handlers.get(method)

        async def lookup(_: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
            return found

        wrapped = await self._interceptor.intercept_service(lookup, _Details(method))
        if wrapped is not None:  # only served names are kept, so the cache is bounded
            self._wrapped[method] = wrapped
        return wrapped

    async def _run(
        self,
        call: WebCall,
        handler: grpc.RpcMethodHandler,
        payload: bytes,
        receive: Receive,
        method: str,
    ) -> None:
        task = asyncio.current_task()
        watcher = asyncio.create_task(_watch_disconnect(receive, call, task))
        call.serve_with(handler.response_serializer)
        behaviour = handler.unary_stream or handler.unary_unary
        try:
            request = handler.request_deserializer(payload)
            async with asyncio.timeout_at(call.deadline):
                result = await behaviour(request, call)
            if handler.unary_unary is not None and call.code() is None:
                await call.write(result)
        except grpc.aio.AbortError:
            pass  # the status is set
        except TimeoutError:
            if call.code() is None:
                call.set_code(grpc.StatusCode.DEADLINE_EXCEEDED)
                call.set_details("Deadline Exceeded")
        except asyncio.CancelledError:
            if not call.gone or task is None or task.uncancel() > 0:
                raise
            return  # nobody to answer
        except Exception as exc:  # what the native server would send as UNKNOWN
            _log.error("grpc_web_call_failed", method=method, exc_info=exc)
            report_unexpected(exc)
            call.set_code(grpc.StatusCode.UNKNOWN)
            call.set_details("Unexpected error")
        finally:
            watcher.cancel()
        if not call.gone:
            await call.finish()


class _Refusal(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def _timeout(value: str) -> float:
    try:
        return parse_timeout(value)
    except FramingError as exc:
        raise _Refusal(grpc.StatusCode.INTERNAL, str(exc)) from exc


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _request_message(body: bytes, text: bool, encoding: str | None, limit: int) -> bytes:
    """The one request message ``body`` carries; anything else is the call's refusal."""
    try:
        frames = split_frames(decode_text(body) if text else body)
    except FramingError as exc:
        raise _Refusal(grpc.StatusCode.INTERNAL, str(exc)) from exc
    if len(frames) != 1 or frames[0][0] & TRAILERS:
        raise _Refusal(grpc.StatusCode.INTERNAL, "A call takes exactly one request message.")
    flags, payload = frames[0]
    if flags & COMPRESSED:
        if encoding and encoding != "identity":
            raise _Refusal(
                grpc.StatusCode.UNIMPLEMENTED, f"Message compression {encoding!r} is not supported."
            )
        raise _Refusal(grpc.StatusCode.INTERNAL, "A compressed message needs a grpc-encoding.")
    if len(payload) > limit:
        raise _Refusal(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"Received message larger than max ({len(payload)} vs. {limit})",
        )
    return payload


async def _watch_disconnect(
    receive: Receive, call: WebCall, task: asyncio.Task[Any] | None
) -> None:
    # The body is read: the next message the server delivers is the client leaving.
    # Cancel the call then, as the native server does, so the flow and its model call stop.
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            call.gone = True
            if task is not None:
                task.cancel()
            return


async def _unsupported(send: Send) -> None:
    # Another codec (+json, say): HTTP's answer for a content type the server cannot read,
    # with a status a gRPC-Web client can show.
    headers = [
        (b"content-type", b"application/grpc-web+proto"),
        (b"grpc-status", str(grpc.StatusCode.INTERNAL.value[0]).encode()),
        (b"grpc-message", b"Only the proto codec is served."),
        (b"content-length", b"0"),
    ]
    await send({"type": "http.response.start", "status": 415, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def grpc_web_layer(
    table: RouteTable,
    service: ServiceDescriptor,
    *,
    max_message_bytes: int,
    run: RunContext | None = None,
    api_keys: ApiKeyring | None = None,
    rate_limiter: RateLimiter | None = None,
    observer: Observer = NO_OBSERVER,
    audit: AuditLog | None = None,
    access_logger: Any = None,
    health_method: str | None = "Health",
) -> Callable[[ASGIApp], ASGIApp]:
    """The gRPC-Web layer for ``service``, for ``build_stack(grpc_web=...)``.

    Its handlers come from ``table`` exactly as the native server's do, and its
    interceptor is built the same way from the same keys, limiter, metrics and audit log,
    so a call has one behaviour on either port. Raises ``ValueError`` as
    ``build_method_handlers`` does.
    """
    handlers = build_method_handlers(table, service, run=run, health_method=health_method)
    by_path = {f"/{service.full_name}/{name}": h for name, h in handlers.items()}
    interceptor = policy_interceptor(
        service.full_name,
        health_method=health_method,
        api_keys=api_keys,
        client_certs=False,  # no client certificates reach the REST port
        rate_limiter=rate_limiter,
        observer=observer,
        audit=audit,
        access_logger=access_logger,
    )

    def layer(app: ASGIApp) -> ASGIApp:
        return GrpcWebMiddleware(app, by_path, interceptor, max_message_bytes=max_message_bytes)

    return layer
