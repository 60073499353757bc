# SPDX-License-Identifier: Apache-2.0
"""The flow route table: every flow declared once, driving every transport.

A ``FlowRoute`` names a Genkit flow, its REST path, its input and output schemas, whether
it streams and whether it may be cached. Framework adapters and the gRPC servicer are
generated from a ``RouteTable``; nothing here knows about HTTP or gRPC. The two runners,
``invoke`` and ``stream``, are the only places a transport starts a flow.

The table is the app's declaration and never changes once built. What the service adds
when it runs (the response cache, the open streams, the JSON depth limit from settings)
is a ``RunContext`` the service builds and hands to every transport beside the table.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson
import structlog
from genkit import Action, GenkitError
from pydantic import BaseModel

from genkit_endpoints.core.context import record_var
from genkit_endpoints.core.crash import report_unexpected
from genkit_endpoints.core.errors import EndpointError, InternalError, InvalidInput
from genkit_endpoints.core.errors import field_errors_from_pydantic as _field_errors
from genkit_endpoints.core.json_depth import (
    DEFAULT_JSON_MAX_DEPTH,
    check_json_depth,
    validate_max_depth,
)
from genkit_endpoints.core.response_cache import ResponseCache
from genkit_endpoints.core.versions import ModelBasis, compute

_PATH = re.compile(r"^/[a-z0-9][a-z0-9/_-]*$")
_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class FlowRoute:
    """One flow exposed on the network.

    ``stream_key`` makes it a streaming route: chunks are sent as they come and the final
    frame carries the flow's output under that key (``{"done": true, "joke": ...}``).

    ``grpc_encode`` maps what the route produces to the fields of its gRPC response
    message, when the JSON shape and the proto differ: for a unary route it receives the
    JSON-ready output (e.g. ``{"review": json.dumps(output)}`` for a proto that carries
    the output as one JSON string); for a streaming route it receives each chunk. Unset,
    a unary output dict is parsed into the message by JSON name or field name, and a
    chunk goes into the response message's only string field.

    ``version`` is the flow's fingerprint for the cache: whatever decides its answer
    besides the input. Left empty on a ``cacheable`` route, the table computes it from
    the flow function's source, the Dotprompt files named in ``prompts`` (``"name"``
    for ``<prompt_dir>/name.prompt``), the model and the model-call settings
    (``core.versions``); set, it is used as given. A changed version never hits old
    entries. Only ``cacheable`` routes are cached.
    """

    flow: Action[Any, Any, Any, Any]
    path: str
    input_model: type[BaseModel]
    output_model: type[BaseModel] | None = None
    stream_key: str | None = None
    cacheable: bool = False
    grpc_method: str | None = None
    summary: str = ""
    grpc_encode: Callable[[Any], Mapping[str, Any]] | None = None
    version: str = ""
    prompts: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.flow.name

    @property
    def streaming(self) -> bool:
        return self.stream_key is not None

    def __post_init__(self) -> None:
        if not _PATH.match(self.path):
            raise ValueError(f"route path {self.path!r} must look like /lower-case-words")
        if self.stream_key is None and self.output_model is None:
            raise ValueError(f"route {self.path}: a unary route needs an output_model")


class ActiveStreams:
    """Streams in progress, so a drain that runs out of time can end them cleanly.

    Servers cut whatever is still running when the shutdown grace ends; ending the
    streams a moment before lets each send its final error frame instead.
    """

    def __init__(self, on_change: Callable[[int], None] | None = None) -> None:
        """``on_change(+1 | -1)`` hears every stream that opens or closes (metrics)."""
        self._queues: set[asyncio.Queue[Any]] = set()
        self._on_change = on_change

    def __len__(self) -> int:
        return len(self._queues)

    def add(self, queue: asyncio.Queue[Any]) -> None:
        self._queues.add(queue)
        if self._on_change is not None:
            self._on_change(1)

    def discard(self, queue: asyncio.Queue[Any]) -> None:
        if queue in self._queues:
            self._queues.discard(queue)
            if self._on_change is not None:
                self._on_change(-1)

    def end_all(self, error: EndpointError) -> int:
        """Make every open stream fail with ``error`` at its next step; returns how many."""
        for queue in self._queues:
            queue.put_nowait(_Abort(error))
        return len(self._queues)


@dataclass(frozen=True, slots=True)
class _Abort:
    error: EndpointError


# Frozen without slots: a slotted frozen dataclass answers an assignment to a name it does
# not have with a confusing TypeError instead of FrozenInstanceError.
@dataclass(frozen=True, eq=False)
class RouteTable:
    """All routes of an app, indexed by path and by flow name; immutable.

    Build it with ``RouteTable.build``, which checks the routes and settles every
    cacheable route's version once.
    """

    routes: tuple[FlowRoute, ...]
    by_path: Mapping[str, FlowRoute]
    by_name: Mapping[str, FlowRoute]

    @classmethod
    def build(
        cls,
        routes: Iterable[FlowRoute],
        *,
        model: str | None = None,
        model_config: BaseModel | str = "",
        prompt_dir: Path | str | None = None,
    ) -> RouteTable:
        """The table of ``routes``, their cache versions filled in.

        ``model`` (the model the flows call) and ``model_config`` (the model-call
        settings) enter every computed version, as do the prompt files each route names
        under ``prompt_dir``. A cacheable route with an empty version whose version
        cannot be computed (no model given, its source unreadable, a prompt file
        missing) raises ``ValueError`` here rather than serving stale answers later.
        """
        basis = ModelBasis(model, model_config) if model else None
        folder = Path(prompt_dir) if prompt_dir is not None else None
        settled: list[FlowRoute] = []
        by_path: dict[str, FlowRoute] = {}
        by_name: dict[str, FlowRoute] = {}
        for route in routes:
            if route.path in by_path:
                raise ValueError(f"duplicate route path {route.path}")
            if route.name in by_name:
                raise ValueError(f"duplicate flow name {route.name}")
            if route.cacheable and not route.version:
                version = compute(
                    route.path, route.flow, route.prompts, model=basis, prompt_dir=folder
                )
                route = replace(route, version=version)  # noqa: PLW2901 - the settled route
            settled.append(route)
            by_path[route.path] = route
            by_name[route.name] = route
        return cls(tuple(settled), MappingProxyType(by_path), MappingProxyType(by_name))

    def __post_init__(self) -> None:
        # The plain constructor takes the three parts as given: they must agree.
        paths = {r.path: r for r in self.routes}
        names = {r.name: r for r in self.routes}
        if len(paths) != len(self.routes) or dict(self.by_path) != paths:
            raise ValueError("by_path must index exactly the routes; use RouteTable.build")
        if len(names) != len(self.routes) or dict(self.by_name) != names:
            raise ValueError("by_name must index exactly the routes; use RouteTable.build")
        for route in self.routes:
            if route.cacheable and not route.version:
                raise ValueError(f"route {route.path} is cacheable without a version")

    def __iter__(self) -> Iterator[FlowRoute]:
        return iter(self.routes)


@dataclass(frozen=True)
class RunContext:
    """What the running service adds to the routes, handed to every transport.

    ``cache`` (None: off) serves the ``cacheable`` routes; ``json_max_depth`` bounds the
    nesting of every JSON input; ``active`` holds the open streams (REST and gRPC) so a
    drain can end them with a final error frame.
    """

    cache: ResponseCache | None = None
    json_max_depth: int = DEFAULT_JSON_MAX_DEPTH
    active: ActiveStreams = field(default_factory=ActiveStreams)

    def __post_init__(self) -> None:
        validate_max_depth(self.json_max_depth)

    async def invoke(self, route: FlowRoute, payload: BaseModel, *, no_cache: bool = False) -> Any:
        """``invoke`` with this context's cache."""
        return await invoke(route, payload, self.cache, no_cache=no_cache)

    def stream(
        self, route: FlowRoute, payload: BaseModel, *, no_cache: bool = False
    ) -> AsyncIterator[Chunk | Final]:
        """``stream`` with this context's cache, registered among the open streams."""
        return stream(route, payload, self.active, self.cache, no_cache=no_cache)


def parse_input(
    route: FlowRoute,
    raw: bytes | Mapping[str, Any] | None,
    *,
    max_depth: int = DEFAULT_JSON_MAX_DEPTH,
) -> BaseModel:
    """Validate a JSON document (bytes) or decoded object against the route's input model.

    An empty body is ``{}``: every input field has a default. A document nested deeper
    than ``max_depth`` is refused before it is parsed; a decoded object is as deep as its
    decoder let it be (the callable envelope checks its bytes, protobuf has its own
    recursion limit).
    """
    model = route.input_model
    if isinstance(raw, bytes):
        check_json_depth(raw, max_depth)
    try:
        if raw is None or raw == b"":
            return model.model_validate({})
        if isinstance(raw, bytes):
            return model.model_validate_json(raw)
        return model.model_validate(raw)
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        errors = getattr(exc, "errors", None)
        fields = _field_errors(errors(include_url=False, include_input=False)) if errors else []
        raise InvalidInput(errors=fields) from None


def to_jsonable(route: FlowRoute, output: Any) -> Any:
    """The flow output as plain JSON data, validated against the declared output model."""
    if route.output_model is not None:
        if not isinstance(output, route.output_model):
            output = route.output_model.model_validate(output)
        return output.model_dump(mode="json", by_alias=True)
    if isinstance(output, BaseModel):
        return output.model_dump(mode="json", by_alias=True)
    return output


def _unwrap(exc: BaseException) -> BaseException:
    """The error a flow raised, if Genkit wrapped it on the way out."""
    seen = 0
    while isinstance(exc, GenkitError) and seen < 5:
        cause = exc.cause if isinstance(exc.cause, BaseException) else exc.__cause__
        if cause is None:
            break
        exc, seen = cause, seen + 1
    return exc


def as_endpoint_error(exc: BaseException) -> EndpointError:
    """Every failure of a flow run, as a client-facing error."""
    inner = _unwrap(exc)
    if isinstance(inner, EndpointError):
        return inner
    if isinstance(inner, GenkitError) and inner.status == "INVALID_ARGUMENT":
        return InvalidInput()
    return InternalError()


def _flow_failure(route: FlowRoute, exc: EndpointError | GenkitError) -> EndpointError:
    """A flow run's failure as the client's error.

    An unexpected exception (a bug in the flow, or anything it let through) is logged
    here with its traceback and goes to the crash reporter: every transport runs flows
    through here, and the client only gets the generic 500. Errors of the hierarchy were
    raised on purpose, and a 500 among them was logged (and reported) where it was raised.
    """
    err = as_endpoint_error(exc)
    inner = _unwrap(exc)
    if isinstance(err, InternalError) and not isinstance(inner, EndpointError):
        _log.error("flow_failed", flow=route.name, exc_info=inner)
        report_unexpected(inner)
    return err


async def invoke(
    route: FlowRoute,
    payload: BaseModel,
    cache: ResponseCache | None = None,
    *,
    no_cache: bool = False,
) -> Any:
    """Run a flow to completion and return its JSON-ready output.

    With a ``cache``, a ``cacheable`` route answers from it, and concurrent identical
    misses share one run (its failure too, never stored). ``no_cache`` (the request's
    ``Cache-Control: no-cache``) skips the read; the fresh answer is still stored.
    """
    record = record_var.get()
    if record is not None:
        record.flow = route.name
    if cache is None or not route.cacheable:
        return await _invoke(route, payload)
    got = await cache.begin(
        cache.key(route.name, route.version, payload), read=not no_cache, flow=route.name
    )
    if isinstance(got, bytes):
        return orjson.loads(got)
    try:
        output = await _invoke(route, payload)
    except Exception as exc:
        await got.fail(as_endpoint_error(exc))
        raise
    except BaseException:
        got.abandon()  # cancelled: the waiters try again themselves
        raise
    await got.complete(orjson.dumps(output))
    return output


async def _invoke(route: FlowRoute, payload: BaseModel) -> Any:
    try:
        result = await route.flow.run(payload)
    except (EndpointError, GenkitError) as exc:
        raise _flow_failure(route, exc) from exc
    return to_jsonable(route, result.response)


@dataclass(frozen=True, slots=True)
class Chunk:
    value: Any


@dataclass(frozen=True, slots=True)
class Final:
    output: Any


_END = object()


def stream(
    route: FlowRoute,
    payload: BaseModel,
    active: ActiveStreams | None = None,
    cache: ResponseCache | None = None,
    *,
    no_cache: bool = False,
) -> AsyncIterator[Chunk | Final]:
    """Run a flow, yielding its chunks as they are produced and then its output.

    With a ``cache`` (``cacheable`` routes only), a completed stream — every chunk and
    the output — is stored and replayed as the same events to later identical requests,
    so every transport frames them identically. A failed, cut or cancelled stream is
    never stored. Concurrent identical requests wait for the first one's complete stream
    and then replay it (they receive nothing until it ends).
    """
    record = record_var.get()
    if record is not None:
        record.flow = route.name
    if cache is None or not route.cacheable:
        return _stream(route, payload, active)
    return _cached_stream(route, payload, active, cache, no_cache=no_cache)


async def _cached_stream(
    route: FlowRoute,
    payload: BaseModel,
    active: ActiveStreams | None,
    cache: ResponseCache,
    *,
    no_cache: bool,
) -> AsyncIterator[Chunk | Final]:
    key = cache.key(route.name, route.version, payload, mode="stream")
    got = await cache.begin(key, read=not no_cache, flow=route.name)
    if isinstance(got, bytes):
        stored = orjson.loads(got)
        for value in stored["chunks"]:
            yield Chunk(value)
        yield Final(stored["output"])
        return
    chunks: list[Any] = []
    settled = False
    events = _stream(route, payload, active)
    try:
        async for event in events:
            if isinstance(event, Chunk):
                chunks.append(event.value)
            else:
                await got.complete(orjson.dumps({"chunks": chunks, "output": event.output}))
                settled = True
            yield event
    except Exception as exc:
        if not settled:
            settled = True
            await got.fail(as_endpoint_error(exc))
        raise
    finally:
        if not settled:
            got.abandon()  # cancelled or closed early: nothing stored, waiters retry
        await events.aclose()  # cancels the flow task when the consumer left early


async def _stream(
    route: FlowRoute, payload: BaseModel, active: ActiveStreams | None = None
) -> AsyncGenerator[Chunk | Final, None]:
    """Run a flow, yielding its chunks as they are produced and then its output.

    The flow runs in a task owned here: when the consumer goes away (client disconnect,
    gRPC cancellation) the generator is closed and the flow — with its model call — is
    cancelled.
    """
    queue: asyncio.Queue[Any] = asyncio.Queue()
    task = asyncio.ensure_future(route.flow.run(payload, on_chunk=queue.put_nowait))
    task.add_done_callback(lambda _: queue.put_nowait(_END))
    if active is not None:
        active.add(queue)
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, _Abort):
                raise item.error
            yield Chunk(item)
        try:
            result = task.result()
        except (EndpointError, GenkitError) as exc:
            raise _flow_failure(route, exc) from exc
        yield Final(to_jsonable(route, result.response))
    finally:
        if active is not None:
            active.discard(queue)
        if not task.done():
            task.cancel()
        elif not task.cancelled():
            task.exception()  # retrieved: the consumer left, nobody else will report it
