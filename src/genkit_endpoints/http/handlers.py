# SPDX-License-Identifier: Apache-2.0
"""Transport-neutral HTTP handling: what every framework adapter answers, byte for byte.

Adapters read the request (path, headers, body) in their framework's way, call one of
these handlers and write the ``HttpReply`` back. Parsing, validation, status codes and
bodies therefore cannot drift between FastAPI, Litestar and Quart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from genkit_endpoints.core import routes
from genkit_endpoints.core.context import current_request_id
from genkit_endpoints.core.errors import (
    PROBLEM_CONTENT_TYPE,
    EndpointError,
    InvalidInput,
    NotFound,
    UnsupportedMediaType,
)
from genkit_endpoints.core.health import Readiness
from genkit_endpoints.core.json_depth import check_json_depth
from genkit_endpoints.core.response_cache import no_cache
from genkit_endpoints.core.routes import FlowRoute, RouteTable, RunContext
from genkit_endpoints.http import sse

JSON_CONTENT_TYPE = "application/json"


@dataclass(slots=True)
class HttpReply:
    """A complete response: either ``body`` or a ``stream`` of byte frames."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None


def json_reply(obj: Any, status: int = 200) -> HttpReply:
    return HttpReply(status, [("content-type", JSON_CONTENT_TYPE)], orjson.dumps(obj))


def problem_reply(err: EndpointError, *, instance: str) -> HttpReply:
    headers = [("content-type", PROBLEM_CONTENT_TYPE), *err.headers.items()]
    body = err.problem_bytes(instance=instance, request_id=current_request_id())
    return HttpReply(err.status, headers, body)


def is_json(content_type: str | None) -> bool:
    """``application/json`` or any ``application/*+json``, parameters ignored."""
    if not content_type:
        return False
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == JSON_CONTENT_TYPE or (mime.startswith("application/") and mime.endswith("+json"))


def _require_json(content_type: str | None, body: bytes) -> None:
    # An empty body needs no type: every input has defaults, so `curl -X POST` works.
    if body and not is_json(content_type):
        raise UnsupportedMediaType()


async def flow_endpoint(
    run: RunContext,
    route: FlowRoute,
    *,
    path: str,
    body: bytes,
    content_type: str | None,
    cache_control: str | None = None,
) -> HttpReply:
    """``POST /<route>``: JSON in, JSON (or SSE for streaming routes) out.

    The run context supplies what every route shares: the JSON depth limit, the cache
    (the request's ``Cache-Control`` may skip the read) and the open streams (ended at
    shutdown).
    """
    skip = no_cache(cache_control)
    try:
        _require_json(content_type, body)
        payload = routes.parse_input(route, body, max_depth=run.json_max_depth)
        if route.streaming:
            frames = sse.route_frames(
                route,
                run.stream(route, payload, no_cache=skip),
                instance=path,
                request_id=current_request_id(),
            )
            return HttpReply(200, list(sse.SSE_HEADERS), stream=frames)
        return json_reply(await run.invoke(route, payload, no_cache=skip))
    except EndpointError as err:
        return problem_reply(err, instance=path)


def _wants_stream(accept: str | None, query_string: bytes) -> bool:
    if accept and "text/event-stream" in accept.lower():
        return True
    return any(part.lower() in (b"stream=true", b"stream=1") for part in query_string.split(b"&"))


async def callable_endpoint(
    table: RouteTable,
    run: RunContext,
    name: str,
    *,
    path: str,
    body: bytes,
    content_type: str | None,
    accept: str | None,
    query_string: bytes,
    cache_control: str | None = None,
) -> HttpReply:
    """``POST /flows/{name}`` with ``{"data": input}`` → ``{"result": output}``."""
    skip = no_cache(cache_control)
    try:
        route = table.by_name.get(name)
        if route is None:
            raise NotFound("There is no flow with that name.")  # input is not echoed back
        _require_json(content_type, body)
        envelope = _callable_envelope(body, run.json_max_depth)
        payload = routes.parse_input(route, envelope)
        if _wants_stream(accept, query_string):
            events = run.stream(route, payload, no_cache=skip)
            frames = sse.callable_frames(events)
            return HttpReply(200, list(sse.SSE_HEADERS), stream=frames)
        if route.streaming:
            output = None
            async for event in run.stream(route, payload, no_cache=skip):
                if isinstance(event, routes.Final):
                    output = event.output
            return json_reply({"result": output})
        return json_reply({"result": await run.invoke(route, payload, no_cache=skip)})
    except EndpointError as err:
        return problem_reply(err, instance=path)


def _callable_envelope(body: bytes, max_depth: int) -> Any:
    """The ``data`` member of the callable request; missing or null means ``{}``.

    The depth is checked on the whole envelope, before orjson (which allows 1024 levels).
    """
    if not body:
        return {}
    check_json_depth(body, max_depth)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidInput(
            errors=[{"field": "body", "message": "Invalid JSON", "type": "json_invalid"}]
        ) from None
    if not isinstance(doc, dict):
        raise InvalidInput(
            errors=[{"field": "body", "message": 'Expected {"data": ...}', "type": "dict_type"}]
        )
    data = doc.get("data")
    return {} if data is None else data


HEALTH_BODY = orjson.dumps({"status": "ok"})


def health() -> HttpReply:
    """Liveness: the process answers. Never touches a model."""
    return HttpReply(200, [("content-type", JSON_CONTENT_TYPE)], HEALTH_BODY)


def ready(readiness: Readiness) -> HttpReply:
    """Readiness as its owners last reported it: no I/O, cheap enough for tight probes."""
    ok, checks = readiness.report()
    status = "unavailable"
    if ok:
        status = "degraded" if "degraded" in checks.values() else "ok"
    return json_reply({"status": status, "checks": checks}, 200 if ok else 503)
