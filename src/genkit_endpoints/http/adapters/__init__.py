# SPDX-License-Identifier: Apache-2.0
"""Framework adapters generated from the flow route table."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from genkit_endpoints.core.errors import NotFound
from genkit_endpoints.http.middleware.errors import request_path, send_problem
from genkit_endpoints.http.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from genkit_endpoints.core.health import Readiness
    from genkit_endpoints.core.routes import RouteTable, RunContext

__all__ = [
    "FRAMEWORKS",
    "Lifespan",
    "MissingExtraError",
    "StrictPaths",
    "check_framework",
    "create_framework_app",
    "request_path",
    "require_framework",
]

FRAMEWORKS = ("fastapi", "litestar", "quart")

Lifespan = Callable[[Any], AbstractAsyncContextManager[None]]

# FastAPI is a core dependency; the others come with an extra of the same name.
_EXTRAS = {"litestar": "litestar", "quart": "quart"}


class MissingExtraError(RuntimeError):
    """The chosen framework is not installed; the message says which extra to install."""


def check_framework(framework: str) -> None:
    """Refuse an unknown framework, or one whose extra is missing, without importing it
    (a supervisor whose workers build the app checks before it starts them)."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework!r}; choose one of {', '.join(FRAMEWORKS)}")
    extra = _EXTRAS.get(framework)
    if extra is not None and importlib.util.find_spec(framework) is None:
        raise MissingExtraError(_missing(framework, extra))


def require_framework(framework: str) -> ModuleType:
    """The adapter module of ``framework``; a clear error when it cannot be used."""
    check_framework(framework)
    try:
        return importlib.import_module(f"genkit_endpoints.http.adapters.{framework}")
    except ModuleNotFoundError as exc:
        extra = _EXTRAS.get(framework)
        missing = (exc.name or "").split(".", 1)[0]
        if extra is None or missing != framework:
            raise  # a broken install, not a missing extra: the original error says more
        raise MissingExtraError(_missing(framework, extra)) from exc


def _missing(framework: str, extra: str) -> str:
    return (
        f"--framework {framework} needs the {extra!r} extra: "
        f"pip install 'genkit-endpoints[{extra}]'"
    )


def create_framework_app(
    framework: str,
    table: RouteTable,
    readiness: Readiness,
    *,
    run: RunContext | None = None,
    debug: bool = False,
    title: str = "Genkit endpoints",
    lifespan: Lifespan | None = None,
) -> ASGIApp:
    """The app of ``framework`` (one of ``FRAMEWORKS``) for ``table``, imported only when chosen.

    ``run`` is the service's run context (cache, open streams, JSON depth limit); without
    one the app runs flows uncached with the default limit.
    """
    factory = getattr(require_framework(framework), f"create_{framework}_app")
    if run is None:
        from genkit_endpoints.core.routes import RunContext  # noqa: PLC0415 - see check_framework

        run = RunContext()  # default: uncached
    app = factory(table, readiness, run=run, debug=debug, title=title, lifespan=lifespan)
    return cast(ASGIApp, app)


class StrictPaths:
    """404 for a path with a trailing or an empty segment, before the framework sees it.

    Litestar's router drops empty segments (``/tell-joke/``, ``//health``, ``/a//b`` all
    route) and Werkzeug strips leading slashes (``//health`` routes on Quart); FastAPI
    (``redirect_slashes=False``) answers 404 to all of them, and so must every framework.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path != "/" and (path.endswith("/") or "//" in path):
                await send_problem(send, NotFound(), request_path(scope))
                return
        await self.app(scope, receive, send)
