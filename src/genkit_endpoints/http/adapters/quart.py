# SPDX-License-Identifier: Apache-2.0
"""Quart adapter: wiring from the route table to Quart views, nothing more.

Request parsing, validation and error bodies live in ``genkit_endpoints.http.handlers`` so every
framework answers the same bytes as FastAPI. Views read the raw body and return raw
responses; Quart's HTML error pages, automatic OPTIONS and HEAD, slash merging, body and
response timeouts and size limit are switched off here. Quart has no docs routes, and
``debug`` adds none: Quart's own debug mode stays off (it renders tracebacks).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, cast

import structlog
from quart import Quart, Response, request
from quart.asgi import ASGIHTTPConnection
from quart.routing import QuartRule
from quart.wrappers import Request
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed as WerkzeugMethodNotAllowed
from werkzeug.exceptions import NotFound as WerkzeugNotFound

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

_log = structlog.get_logger(__name__)

_CONFIG = {
    "DEBUG": False,  # debug renders tracebacks, also in DEBUG
    "TESTING": False,  # likewise: Quart shows tracebacks to clients when testing
    "PROPAGATE_EXCEPTIONS": False,
    "TRAP_HTTP_EXCEPTIONS": False,
    "PROVIDE_AUTOMATIC_OPTIONS": False,  # FastAPI answers OPTIONS with 405
    # Limits and timeouts are the ASGI stack's job, identical on every framework: Quart's
    # 16 MB limit and 60 s body timeout would answer differently, and its 60 s response
    # timeout silently cuts long SSE streams.
    "MAX_CONTENT_LENGTH": None,
    "BODY_TIMEOUT": None,
    "RESPONSE_TIMEOUT": None,
}


class _ExactMethodsRule(QuartRule):
    """A rule with exactly the declared methods.

    Werkzeug adds HEAD to every GET rule; FastAPI answers HEAD on ``/health`` with 405 and
    ``Allow: GET``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.methods is not None:
            self.methods.discard("HEAD")


class _CancellingHTTPConnection(ASGIHTTPConnection):
    """Quart's HTTP connection, cancelling its tasks when its own task is cancelled.

    Quart runs the view and the receive loop in tasks of their own and leaves them running
    when the caller is cancelled (request timeout, server shutdown): the flow and its model
    call would go on for nobody, and a late view could write after our 504.
    One instance serves one request, so the task list is per request.
    """

    def __init__(self, app: Quart, scope: Any) -> None:
        super().__init__(app, scope)
        self._tasks: list[asyncio.Task[Any]] = []
        self._ended = False

    def _track(self) -> bool:
        """Register the running task; False when the connection already ended."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.append(task)
        return not self._ended  # a task scheduled just before the end must not start

    async def handle_request(self, request: Request, send: Any) -> None:
        if self._track():
            await super().handle_request(request, send)

    async def handle_messages(self, request: Request, receive: Any) -> None:
        if self._track():
            await super().handle_messages(request, receive)

    async def __call__(self, receive: Any, send: Any) -> None:
        try:
            await super().__call__(receive, send)
        finally:
            self._ended = True
            for task in self._tasks:
                task.cancel()


class _App(Quart):
    url_rule_class = _ExactMethodsRule
    asgi_http_class = _CancellingHTTPConnection


def to_response(reply: HttpReply) -> Response:
    # A byte body gets a Content-Length; an async iterator is sent chunk by chunk as it
    # yields: a stream is never buffered.
    body = reply.stream if reply.stream is not None else reply.body
    return Response(body, status=reply.status, headers=Headers(reply.headers))


async def _body() -> bytes:
    return await request.get_data(cache=False, as_text=False, parse_form_data=False)


def _flow_view(route: FlowRoute, run: RunContext) -> Callable[[], Awaitable[Response]]:
    async def handle() -> Response:
        reply = await http.flow_endpoint(
            run,
            route,
            path=request_path(request.scope),
            body=await _body(),
            content_type=request.headers.get("content-type"),
            cache_control=request.headers.get("cache-control"),
        )
        return to_response(reply)

    handle.__name__ = route.name
    return handle


def _problem_from_http_exception(exc: HTTPException) -> EndpointError:
    if isinstance(exc, WerkzeugNotFound):
        return NotFound()
    if isinstance(exc, WerkzeugMethodNotAllowed):
        return MethodNotAllowed(exc.valid_methods or ())
    if exc.code == 400:
        return BadRequest()
    return InternalError()


async def _on_http_error(exc: HTTPException) -> Response:
    err = _problem_from_http_exception(exc)
    return to_response(http.problem_reply(err, instance=request_path(request.scope)))


async def _on_unexpected(exc: Exception) -> Response:
    # Quart swallows the exception after this answer (FastAPI re-raises it to the error
    # envelope, which logs it), so it is logged here under the envelope's event name.
    _log.error("unhandled_error", path=request.scope.get("path"), exc_info=exc)
    report_unexpected(exc)
    return to_response(http.problem_reply(InternalError(), instance=request_path(request.scope)))


def create_quart_app(
    table: RouteTable,
    readiness: Readiness,
    *,
    run: RunContext,
    debug: bool = False,  # same signature as the other adapters; Quart serves no docs,
    title: str = "Genkit endpoints",  # so neither is used
    lifespan: Lifespan | None = None,
) -> ASGIApp:
    """A Quart app: every route of ``table``, health, readiness and the callable protocol."""
    # No static or template folders: Quart would add a /static/<path> route for one.
    app = _App(__name__, static_folder=None, template_folder=None)
    app.config.update(_CONFIG)
    # Werkzeug redirects `/a//b` to `/a/b` (308); StrictPaths answers those with 404 first,
    # but a redirect must never be possible (Quart renders it as an HTML page).
    app.url_map.merge_slashes = False

    async def health() -> Response:
        return to_response(http.health())

    async def ready() -> Response:
        return to_response(http.ready(readiness))

    async def call_flow(flow_name: str) -> Response:
        reply = await http.callable_endpoint(
            table,
            run,
            flow_name,
            path=request_path(request.scope),
            body=await _body(),
            content_type=request.headers.get("content-type"),
            accept=request.headers.get("accept"),
            query_string=request.scope.get("query_string", b""),
            cache_control=request.headers.get("cache-control"),
        )
        return to_response(reply)

    def add(
        path: str, endpoint: str, view: Callable[..., Awaitable[Response]], method: str
    ) -> None:
        app.add_url_rule(path, endpoint, view, methods=[method], provide_automatic_options=False)

    add("/health", "health", health, "GET")
    add("/ready", "ready", ready, "GET")
    for route in table:
        add(route.path, f"flow:{route.name}", _flow_view(route, run), "POST")
    add("/flows/<flow_name>", "callable", call_flow, "POST")

    app.register_error_handler(HTTPException, _on_http_error)
    app.register_error_handler(Exception, _on_unexpected)

    if lifespan is not None:
        enter = lifespan  # bound for the closure, where mypy forgets the narrowing

        # Quart enters this at ASGI lifespan start-up and resumes it at shutdown.
        async def serving() -> AsyncGenerator[None, None]:
            async with enter(app):
                yield

        app.while_serving(serving)
    # Quart types its scopes as TypedDicts; at runtime it is the same ASGI callable.
    return StrictPaths(cast(ASGIApp, app))
