# SPDX-License-Identifier: Apache-2.0
"""gRPC method handlers generated from the route table and a proto service descriptor.

Each RPC of the service whose name matches a ``FlowRoute.grpc_method`` gets a handler that
turns the request message into the route's JSON input (empty proto fields are dropped,
so they take the REST defaults), validates it with ``routes.parse_input``, runs the flow
through ``routes.invoke`` or ``routes.stream`` and encodes the result back into the
response message. There is no per-RPC code and no second copy of flow logic. Every
failure goes through ``abort_with_error``, the one place that maps the error hierarchy to
gRPC status codes. Client deadlines bound the flow run, and the flow (with its model call)
is cancelled when the deadline passes, the client cancels or a drain runs out of grace.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any, cast

import grpc
import orjson
import structlog
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message

from genkit_endpoints.core import routes
from genkit_endpoints.core.crash import report_unexpected
from genkit_endpoints.core.errors import (
    EndpointError,
    InternalError,
    InvalidInput,
    RateLimited,
    ServiceUnavailable,
    UpstreamTimeout,
)
from genkit_endpoints.core.response_cache import ResponseCache, no_cache
from genkit_endpoints.core.routes import FlowRoute, RouteTable, RunContext

__all__ = ["InflightCalls", "abort_with_error", "build_method_handlers", "grpc_details"]

_log = structlog.get_logger(__name__)
HEALTH_REPLY: Mapping[str, str] = {"status": "ok"}
_SHUTDOWN = "The server is shutting down; retry the call."
_DEADLINE = "The call's deadline passed before the flow finished."
_MAX_FIELD_ERRORS = 10  # details travel in a header: keep them well under metadata limits


class InflightCalls:
    """The flow RPCs being served, so a drain can wait for them and cut the stragglers.

    Holds the handler tasks only: health watches and reflection streams are not work a
    drain should wait for.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._cut: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._tasks)

    def enter(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        self._idle.clear()

    def leave(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._cut.discard(task)
        if not self._tasks:
            self._idle.set()

    def was_cut(self, task: asyncio.Task[Any]) -> bool:
        return task in self._cut

    async def wait_idle(self, within: float) -> bool:
        """True when every call finished within ``within`` seconds."""
        try:
            async with asyncio.timeout(max(within, 0)):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def cut(self) -> int:
        """Cancel every call; each ends with UNAVAILABLE. Returns how many."""
        for task in self._tasks:
            self._cut.add(task)
            task.cancel()
        return len(self._tasks)


def grpc_details(err: EndpointError) -> str:
    """The status message: the client-facing detail plus, for bad input, the fields."""
    if not err.errors:
        return err.detail
    problems = "; ".join(
        f"{e.get('field', 'body')}: {e.get('message', 'invalid value')}"
        for e in err.errors[:_MAX_FIELD_ERRORS]
    )
    return f"{err.detail} {problems}"


async def abort_with_error(context: grpc.aio.ServicerContext, err: EndpointError) -> None:
    """End the call with the error's status. Always raises (gRPC's AbortError)."""
    # abort() replaces the trailers set so far (the request id): carry them over.
    trailers = tuple(context.trailing_metadata() or ())
    if isinstance(err, RateLimited | ServiceUnavailable):
        retry_after = next((v for k, v in err.headers.items() if k.lower() == "retry-after"), None)
        if retry_after:
            trailers = (*trailers, ("retry-after", retry_after))
    await context.abort(grpc.StatusCode[err.grpc_code], grpc_details(err), trailers)


def _failure(exc: BaseException) -> EndpointError:
    err = routes.as_endpoint_error(exc)
    # Unexpected: the log (and the crash reporter) get what the client must not. A flow's
    # own failure arrives here already typed, and routes logged it if it was a bug.
    if isinstance(err, InternalError) and not isinstance(exc, EndpointError):
        _log.error("grpc_flow_failed", exc_info=exc)
        report_unexpected(exc)
    return err


async def _serve(
    inflight: InflightCalls,
    context: grpc.aio.ServicerContext,
    work: Callable[[], Awaitable[Message | None]],
) -> Message | None:
    task = asyncio.current_task()
    if task is None:  # pragma: no cover - gRPC always runs handlers in a task
        raise RuntimeError("gRPC handler outside a task")
    inflight.enter(task)
    try:
        try:
            # time_remaining() is None without a client deadline: no timer at all then.
            async with asyncio.timeout(context.time_remaining()) as scope:
                return await work()
        except asyncio.CancelledError:
            if not inflight.was_cut(task):
                raise  # the client cancelled or gRPC gave up on the call: nobody to answer
            task.uncancel()  # the drain's cancel is handled here; the abort must still run
            err: EndpointError = ServiceUnavailable(_SHUTDOWN)
        except TimeoutError as exc:
            err = UpstreamTimeout(_DEADLINE) if scope.expired() else _failure(exc)
        except Exception as exc:
            err = _failure(exc)
        await abort_with_error(context, err)
        return None  # pragma: no cover - abort always raises
    finally:
        inflight.leave(task)


def _as_input(request: Message) -> dict[str, Any]:
    # Proto3 cannot tell "unset" from "empty"; dropping empty fields gives them the REST
    # defaults, and proto field names are the Pydantic field names.
    if _string_fields(type(request)) is not None:
        # What MessageToDict gives for such a message (the set fields, by proto name,
        # values as they are), without its generic per-field conversion.
        return {field.name: value for field, value in request.ListFields()}
    fields: dict[str, Any] = json_format.MessageToDict(request, preserving_proto_field_name=True)
    return fields


def _parse(fields: Mapping[str, Any], cls: type[Message]) -> Message:
    # ParseDict accepts JSON names and proto names alike, so camelCase keys such as
    # backStory land in back_story; keys the proto lacks are ignored, not errors.
    names = _string_fields(cls)
    if names is not None and type(fields) is dict:
        message = _parse_strings(fields, cls, names)
        if message is not None:
            return message
    return json_format.ParseDict(fields, cls(), ignore_unknown_fields=True)


# Any surrogate code point: a superset of what ParseDict refuses as unpaired, so a value
# with one is left to ParseDict to accept or refuse.
_SURROGATES = re.compile("[\ud800-\udfff]")
_STRING_FIELDS: dict[type[Message], dict[str, str] | None] = {}


def _string_fields(cls: type[Message]) -> dict[str, str] | None:
    """For a message of plain singular string fields only (most request and response
    messages here), the field each JSON key names (JSON name first, then proto name, as
    ParseDict looks them up); None for any other message.

    Such messages convert to and from dicts without json_format's generic machinery,
    which is a visible share of a cheap call; anything else goes through json_format.
    """
    try:
        return _STRING_FIELDS[cls]
    except KeyError:
        names = _STRING_FIELDS[cls] = _string_field_names(cls.DESCRIPTOR)
        return names


def _string_field_names(descriptor: Descriptor) -> dict[str, str] | None:
    if descriptor.full_name.startswith("google.protobuf.") or descriptor.is_extendable:
        return None  # well-known types have JSON forms of their own
    for field in descriptor.fields:
        if (
            field.type != FieldDescriptor.TYPE_STRING
            or _is_repeated(field)
            or field.containing_oneof is not None
            or field.is_extension
        ):
            return None
    names = {field.name: field.name for field in descriptor.fields}
    names.update({field.json_name: field.name for field in descriptor.fields})
    return names


def _parse_strings(
    fields: dict[Any, Any], cls: type[Message], names: dict[str, str]
) -> Message | None:
    """``ParseDict(fields, cls(), ignore_unknown_fields=True)`` for a message of string
    fields, or None when a key or value needs ParseDict's own rules (non-text keys,
    extension-like keys, non-string values, surrogates)."""
    values: dict[str, str] = {}
    for key, value in fields.items():
        if type(key) is not str:
            return None
        name = names.get(key)
        if name is None:
            if key.startswith("[") or _SURROGATES.search(key):  # extension-like, or
                return None  # a name protobuf's lookup itself refuses
            continue  # a key the message lacks: ignored
        if value is None:  # ParseDict clears the field
            values.pop(name, None)
        elif type(value) is str and _SURROGATES.search(value) is None:
            values[name] = value  # a later key for the same field wins, as in ParseDict
        else:
            return None
    return cls(**values)


def _only_string_field(descriptor: Descriptor) -> str | None:
    fields = descriptor.fields
    if len(fields) != 1 or fields[0].type != FieldDescriptor.TYPE_STRING:
        return None
    return None if _is_repeated(fields[0]) else str(fields[0].name)


def _is_repeated(field: FieldDescriptor) -> bool:
    # ``is_repeated`` replaced ``label`` in protobuf 6; support both.
    flag = getattr(field, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return bool(field.label == FieldDescriptor.LABEL_REPEATED)


class _FlowMethod:
    """One RPC served by one route."""

    def __init__(
        self,
        route: FlowRoute,
        response: type[Message],
        chunk_field: str | None,
        calls: InflightCalls,
        cache: ResponseCache | None = None,
    ) -> None:
        self.route = route
        self.response = response
        self.chunk_field = chunk_field
        self.calls = calls
        self.cache = cache

    def _encode_output(self, output: Any) -> Message:
        encode = self.route.grpc_encode
        return _parse(encode(output) if encode is not None else output, self.response)

    def _encode_chunk(self, chunk: Any) -> Message:
        if self.route.grpc_encode is not None:
            return _parse(self.route.grpc_encode(chunk), self.response)
        text = chunk if isinstance(chunk, str) else orjson.dumps(chunk).decode()
        return self.response(**{str(self.chunk_field): text})

    async def unary(self, request: Message, context: grpc.aio.ServicerContext) -> Message | None:
        async def work() -> Message:
            payload = routes.parse_input(self.route, _as_input(_decoded(request)))
            output = await routes.invoke(
                self.route, payload, self.cache, no_cache=_no_cache(context)
            )
            return self._encode_output(output)

        return await _serve(self.calls, context, work)

    async def stream(self, request: Message, context: grpc.aio.ServicerContext) -> None:
        async def work() -> None:
            payload = routes.parse_input(self.route, _as_input(_decoded(request)))
            events = cast(
                AsyncGenerator[Any, None],
                routes.stream(self.route, payload, None, self.cache, no_cache=_no_cache(context)),
            )
            try:
                async for event in events:
                    if isinstance(event, routes.Chunk):
                        await context.write(self._encode_chunk(event.value))
                # The final output is not sent: a gRPC stream carries the chunks only.
            finally:
                # A cancelled write leaves the generator suspended; closing it here
                # cancels the flow task it owns (routes.stream), and its model call.
                await events.aclose()

        await _serve(self.calls, context, work)


def _no_cache(context: grpc.aio.ServicerContext) -> bool:
    """Metadata ``cache-control: no-cache`` skips cached answers, as the HTTP header does."""
    for key, value in context.invocation_metadata() or ():
        if key == "cache-control" and no_cache(value if isinstance(value, str) else None):
            return True
    return False


class _Undecodable:
    """What the deserializer hands over for bytes that are not a valid message."""


_UNDECODABLE = _Undecodable()


def _safe_deserializer(cls: type[Message]) -> Callable[[bytes], Message | _Undecodable]:
    """``cls.FromString`` that never raises.

    gRPC answers a deserializer exception with UNKNOWN and a message naming protobuf's
    exception class (an internal detail leaking out); the handler turns the marker into
    INVALID_ARGUMENT with a sentence for the client instead.
    """

    def decode(data: bytes) -> Message | _Undecodable:
        try:
            return cls.FromString(data)
        except DecodeError:
            return _UNDECODABLE

    return decode


def _decoded(request: Message | _Undecodable) -> Message:
    if isinstance(request, _Undecodable):
        raise InvalidInput("The request message could not be decoded.")
    return request


def _health(reply: Message) -> Callable[[Message, grpc.aio.ServicerContext], Awaitable[Message]]:
    async def health(request: Message, context: grpc.aio.ServicerContext) -> Message:
        return reply

    return health


def build_method_handlers(
    table: RouteTable,
    service: ServiceDescriptor,
    *,
    run: RunContext | None = None,
    inflight: InflightCalls | None = None,
    health_method: str | None = "Health",
) -> dict[str, grpc.RpcMethodHandler]:
    """A handler for every RPC of ``service``, keyed by method name.

    Raises ``ValueError`` at build time, not at the first call, when an RPC has no route
    (it would answer UNIMPLEMENTED), a route names an RPC the service lacks, or the
    streaming kinds disagree. ``health_method`` names a unary RPC answered with
    ``{"status": "ok"}`` without touching a model. ``run`` supplies the response cache
    (None: uncached); gRPC streams are not among its open REST streams, because the
    server's drain cancels its own calls.
    """
    cache = run.cache if run is not None else None
    calls = inflight if inflight is not None else InflightCalls()
    by_method = {r.grpc_method: r for r in table if r.grpc_method}
    unknown = sorted(set(by_method) - set(service.methods_by_name))
    if unknown:
        raise ValueError(f"routes name RPCs {service.full_name} lacks: {', '.join(unknown)}")
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in service.methods:
        name = method.name
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        codec = {
            "request_deserializer": _safe_deserializer(request),
            "response_serializer": response.SerializeToString,
        }
        if method.client_streaming:
            raise ValueError(f"{name}: client-streaming RPCs cannot be served from a route")
        route = by_method.get(name)
        if route is None:
            if name != health_method or method.server_streaming:
                raise ValueError(f"RPC {service.full_name}/{name} has no route")
            reply = _parse(HEALTH_REPLY, response)
            handlers[name] = grpc.unary_unary_rpc_method_handler(_health(reply), **codec)
            continue
        if route.streaming != method.server_streaming:
            raise ValueError(f"{name}: route {route.path} and the RPC disagree on streaming")
        chunk_field = _only_string_field(method.output_type)
        if route.streaming and chunk_field is None and route.grpc_encode is None:
            raise ValueError(
                f"{name}: {method.output_type.full_name} has no single string field; "
                "set grpc_encode on the route"
            )
        flow_method = _FlowMethod(route, response, chunk_field, calls, cache)
        if route.streaming:
            handlers[name] = grpc.unary_stream_rpc_method_handler(flow_method.stream, **codec)
        else:
            handlers[name] = grpc.unary_unary_rpc_method_handler(flow_method.unary, **codec)
    return handlers
