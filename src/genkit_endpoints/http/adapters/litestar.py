# SPDX-License-Identifier: Apache-2.0
"""Litestar adapter: wiring from the route table to Litestar handlers, nothing more.

Request parsing, validation and error bodies live in ``genkit_endpoints.http.handlers`` so every
framework answers the same bytes as FastAPI. Handlers read the raw body and return raw
responses; Litestar's own validation, 201 default, automatic OPTIONS answers, lenient
slash matching, logging and debug pages are switched off or neutralised here.
Only with ``debug`` are Litestar's schema routes served, under ``/schema`` (not FastAPI's
``/docs``): ``/schema`` (UI), ``/schema/openapi.json``, ``/schema/openapi.yaml`` and
``/schema/{swagger,redoc,elements,rapidoc}``; they list every route but no request bodies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import structlog
from litestar import Litestar, Request, Response, get, post, route
from litestar.enums import HttpMethod
from litestar.exceptions import HTTPException, MethodNotAllowedException, NotFoundException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.response import Stream

from genkit_endpoints.core.crash import report_unexpected
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
from genkit_endpoints.http.adapters import Lifespan, StrictPaths, request_path
from genkit_endpoints.http.handlers import HttpReply
from genkit_endpoints.http.types import ASGIApp

AnyRequest = Request[Any, Any, Any]
_log = structlog.get_logger(__name__)


def to_response(reply: HttpReply) -> Response[Any]:
    # Our content-type wins over Litestar's media type (it only `setdefault`s its own), and
    # the explicit status beats the decorator's: success is 200, never Litestar's POST 201.
    headers = dict(reply.headers)
    if reply.stream is not None:
        return Stream(reply.stream, status_code=reply.status, headers=headers)
    return Response(reply.body, status_code=reply.status, headers=headers)


def _flow_handler(
    route: FlowRoute, run: RunContext
) -> Callable[[AnyRequest], Awaitable[Response[Any]]]:
    async def handle(request: AnyRequest) -> Response[Any]:
        reply = await http.flow_endpoint(
            run,
            route,
            path=request_path(request.scope),
            body=await request.body(),
            content_type=request.headers.get("content-type"),
            cache_control=request.headers.get("cache-control"),
        )
        return to_response(reply)

    handle.__name__ = route.name
    return handle


def _guarded(path: str, allowed: str, handler: HTTPRouteHandler) -> list[HTTPRouteHandler]:
    """``handler`` preceded by an explicit OPTIONS handler answering 405, as FastAPI does.

    Litestar adds a 204 OPTIONS handler to every path that has none when the path is first
    registered (its CORS preflight help), so ours must come first. CORS is the middleware's
    job here: the framework must not answer preflights.
    """

    async def refuse(request: AnyRequest) -> Response[Any]:
        err = MethodNotAllowed([allowed])
        return to_response(http.problem_reply(err, instance=request_path(request.scope)))

    options = route(path, http_method=[HttpMethod.OPTIONS], include_in_schema=False)
    return [options(refuse), handler]


def _problem_from_http_exception(exc: HTTPException) -> EndpointError:
    if isinstance(exc, NotFoundException) or exc.status_code == 404:
        return NotFound()
    if isinstance(exc, MethodNotAllowedException) or exc.status_code == 405:
        allow = (exc.headers or {}).get("allow", "")
        # Our refusing OPTIONS handlers make Litestar list OPTIONS; FastAPI does not.
        methods = [m.strip() for m in allow.split(",") if m.strip() not in ("", "OPTIONS")]
        return MethodNotAllowed(methods)
    if exc.status_code == 400:
        return BadRequest()
    return InternalError()


# Litestar calls exception handlers synchronously: these must not be coroutines.
def _on_http_error(request: AnyRequest, exc: Exception) -> Response[Any]:
    err = _problem_from_http_exception(exc) if isinstance(exc, HTTPException) else InternalError()
    return to_response(http.problem_reply(err, instance=request_path(request.scope)))


def _on_unexpected(request: AnyRequest, exc: Exception) -> Response[Any]:
    # Litestar swallows the exception after this answer (FastAPI re-raises it to the error
    # envelope, which logs it), so it is logged here under the envelope's event name.
    _log.error("unhandled_error", path=request.scope.get("path"), exc_info=exc)
    report_unexpected(exc)
    return to_response(http.problem_reply(InternalError(), instance=request_path(request.scope)))


def create_litestar_app(
    table: RouteTable,
    readiness: Readiness,
    *,
    run: RunContext,
    debug: bool = False,
    title: str = "Genkit endpoints",
    lifespan: Lifespan | None = None,
) -> ASGIApp:
    """A Litestar app: every route of ``table``, health, readiness and the callable protocol."""

    async def health() -> Response[Any]:
        return to_response(http.health())

    async def ready() -> Response[Any]:
        return to_response(http.ready(readiness))

    # The name is read from path_params, not declared as an argument: Litestar warns about
    # inferred path parameters, and its newer spellings do not exist in every 2.x release.
    async def call_flow(request: AnyRequest) -> Response[Any]:
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

    handlers = [
        *_guarded("/health", "GET", get("/health", summary="Liveness")(health)),
        *_guarded("/ready", "GET", get("/ready", summary="Readiness")(ready)),
    ]
    for flow_route in table:
        summary = flow_route.summary or flow_route.name
        handler = post(flow_route.path, status_code=200, summary=summary)
        handlers += _guarded(flow_route.path, "POST", handler(_flow_handler(flow_route, run)))
    callable_path = "/flows/{flow_name:str}"
    handler = post(callable_path, status_code=200, summary="Genkit callable protocol")
    handlers += _guarded(callable_path, "POST", handler(call_flow))

    app = Litestar(
        route_handlers=handlers,
        exception_handlers={
            # Litestar picks the most specific class along the MRO; all render via http.
            NotFoundException: _on_http_error,
            MethodNotAllowedException: _on_http_error,
            HTTPException: _on_http_error,
            Exception: _on_unexpected,
        },
        # Explicit False: None would read LITESTAR_DEBUG / LITESTAR_PDB from the
        # environment, and debug renders tracebacks to clients.
        debug=False,
        pdb_on_exception=False,
        # None, not the default: Litestar's LoggingConfig reconfigures stdlib logging at
        # start-up and prints tracebacks outside our structured logs.
        logging_config=None,
        # The default config would serve /schema always; "0.1.0" is FastAPI's default version.
        openapi_config=OpenAPIConfig(title=title, version="0.1.0") if debug else None,
        # Body limits are the ASGI stack's job, identical on every framework; Litestar's
        # own 10 MB limit would answer differently from FastAPI.
        request_max_body_size=None,
        lifespan=[lifespan] if lifespan is not None else None,
    )
    # Litestar types its scopes as TypedDicts; at runtime it is the same ASGI callable.
    return StrictPaths(cast(ASGIApp, app))
