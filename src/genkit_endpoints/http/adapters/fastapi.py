# SPDX-License-Identifier: Apache-2.0
"""FastAPI adapter: wiring from the route table to FastAPI routes, nothing more.

Request parsing, validation and error bodies live in ``genkit_endpoints.http.handlers`` so every
framework answers the same bytes. FastAPI's own body handling is not used, so neither
is its OpenAPI generator: the document (served only in DEBUG) comes from
``genkit_endpoints.http.openapi``, built from the same route table. The routes are plain
Starlette routes for the same reason: FastAPI's route class would solve dependencies and
prepare a response model on every request for handlers that take only the request.

FastAPI's native OpenTelemetry support (releases with a ``telemetry`` parameter) is
switched off: as soon as a global tracer provider exists it opens a server span of its
own — a second one next to the kit's tracing layer, which gives every framework the same
single server span and shows it only the route template, where FastAPI's records the raw
path — plus dependency and endpoint spans that would put the flow's spans under
FastAPI's instead of under the request.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from genkit_endpoints.core.errors import (
    BadRequest,
    EndpointError,
    InternalError,
    MethodNotAllowed,
    NotFound,
)
from genkit_endpoints.core.health import Readiness
from genkit_endpoints.core.routes import FlowRoute, RouteTable, RunContext
from genkit_endpoints.http import handlers as http
from genkit_endpoints.http.adapters import Lifespan
from genkit_endpoints.http.handlers import HttpReply
from genkit_endpoints.http.middleware.errors import request_path
from genkit_endpoints.http.openapi import openapi_document

_NATIVE_TELEMETRY_OFF = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
}


def _native_telemetry_off() -> dict[str, Any]:
    # Older releases have no such parameter, and no native telemetry to switch off.
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        return {"telemetry": dict(_NATIVE_TELEMETRY_OFF)}
    return {}


class _EventStream(StreamingResponse):
    """A streamed response that watches for the client hanging up with one task.

    Starlette's own (for servers older than ASGI 2.4, which is all of ours) runs the body
    in a task group next to a disconnect listener: anyio's task group and cancel scope
    for every open stream. Here the body is sent from the request's task and one plain
    task waits for ``http.disconnect``; on a hang-up it cancels the request's task, as a
    timeout would, and the cancellation is taken back once it has stopped the body (the
    flow's generator, and with it the model call, is cancelled on the way out). A
    cancellation from anywhere else (the server shutting down) still propagates.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - called by a server, inside a task
        hung_up = False

        async def watch() -> None:
            nonlocal hung_up
            while (await receive())["type"] != "http.disconnect":
                pass
            hung_up = True
            task.cancel()

        watcher = asyncio.ensure_future(watch())
        try:
            await self.stream_response(send)
        except asyncio.CancelledError:
            if not hung_up or task.uncancel() > 0:
                raise
            return
        finally:
            watcher.cancel()
        if self.background is not None:
            await self.background()


def to_response(reply: HttpReply) -> Response:
    headers = dict(reply.headers)
    if reply.stream is not None:
        return _EventStream(reply.stream, status_code=reply.status, headers=headers)
    return Response(reply.body, status_code=reply.status, headers=headers)


def _flow_handler(route: FlowRoute, run: RunContext) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        reply = await http.flow_endpoint(
            run,
            route,
            path=request_path(request.scope),  # request.url would parse a whole URL
            body=await request.body(),
            content_type=request.headers.get("content-type"),
            cache_control=request.headers.get("cache-control"),
        )
        return to_response(reply)

    handle.__name__ = route.name
    return handle


def _add(
    app: FastAPI, path: str, endpoint: Callable[[Request], Awaitable[Response]], method: str
) -> None:
    """A plain Starlette route: the handler parses the request itself, so FastAPI's
    per-request dependency solving and response handling would be work for nothing."""
    route = Route(path, endpoint, methods=[method])
    route.methods = {method}  # Starlette adds HEAD to GET; the other frameworks answer 405
    app.router.routes.append(route)


def _problem_from_http_exception(exc: StarletteHTTPException) -> EndpointError:
    if exc.status_code == 404:
        return NotFound()
    if exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        return MethodNotAllowed([m.strip() for m in allow.split(",") if m.strip()])
    if exc.status_code == 400:
        return BadRequest()
    return InternalError()


def create_fastapi_app(
    table: RouteTable,
    readiness: Readiness,
    *,
    run: RunContext,
    debug: bool = False,
    title: str = "Genkit endpoints",
    lifespan: Lifespan | None = None,
) -> FastAPI:
    """A FastAPI app: every route of ``table``, health, readiness and the callable protocol."""

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for that type
        err = _problem_from_http_exception(exc)
        return to_response(http.problem_reply(err, instance=request.url.path))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # Starlette re-raises after sending this; the outer error envelope logs it.
        return to_response(http.problem_reply(InternalError(), instance=request.url.path))

    app = FastAPI(
        title=title,
        debug=False,  # never render tracebacks, also in DEBUG
        docs_url="/docs" if debug else None,
        redoc_url=None,
        openapi_url="/openapi.json" if debug else None,
        lifespan=lifespan,
        redirect_slashes=False,
        exception_handlers={StarletteHTTPException: on_http_error, Exception: on_unexpected},
        **_native_telemetry_off(),
    )

    async def health(request: Request) -> Response:
        return to_response(http.health())

    async def ready(request: Request) -> Response:
        return to_response(http.ready(readiness))

    # Probes first: the router tries routes in order, and probes are the hottest path.
    _add(app, "/health", health, "GET")
    _add(app, "/ready", ready, "GET")

    for route in table:
        _add(app, route.path, _flow_handler(route, run), "POST")

    async def call_flow(request: Request) -> Response:
        reply = await http.callable_endpoint(
            table,
            run,
            request.path_params["flow_name"],
            path=request_path(request.scope),
            body=await request.body(),
            content_type=request.headers.get("content-type"),
            accept=request.headers.get("accept"),
            query_string=request.scope.get("query_string", b""),
            cache_control=request.headers.get("cache-control"),
        )
        return to_response(reply)

    _add(app, "/flows/{flow_name}", call_flow, "POST")
    if debug:
        document = openapi_document(table, title=title, version=app.version)
        # FastAPI's documented hook: its own generator cannot see what the handlers send.
        app.openapi = lambda: document  # type: ignore[method-assign]
    return app
