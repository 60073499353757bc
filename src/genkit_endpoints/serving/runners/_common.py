# SPDX-License-Identifier: Apache-2.0
"""What every server runner shares: the missing-extra error, app targets, time rounding.

Kept free of server imports so that choosing a server that is not installed fails with
one clear line instead of an ``ImportError`` from deep inside a runner.
"""

from __future__ import annotations

import importlib
import importlib.util
import math

from genkit_endpoints.compat import require_supported
from genkit_endpoints.http.types import ASGIApp

# server name -> (module to import, extra that installs it; None: a base dependency)
EXTRAS: dict[str, tuple[str, str | None]] = {
    "uvicorn": ("uvicorn", None),
    "granian": ("granian", "granian"),
    "hypercorn": ("hypercorn", "hypercorn"),
}


class ServerExtraMissing(RuntimeError):
    """The chosen server's optional package is not installed; the message says how to add it."""

    def __init__(self, server: str, extra: str) -> None:
        super().__init__(
            f"--server {server} needs the {extra!r} extra: pip install 'genkit-endpoints[{extra}]'"
        )
        self.server = server
        self.extra = extra


def require_server(server: str) -> None:
    """Raise ``ServerExtraMissing`` (or ``ValueError`` for an unknown name) before any work.

    Also ``UnsupportedDependency`` when the installed server is outside the range the
    kit's hooks into it were checked against (``genkit_endpoints.compat``): read from
    package metadata, without importing the server.
    """
    if server not in EXTRAS:
        raise ValueError(f"unknown server {server!r}; choose one of {', '.join(EXTRAS)}")
    module, extra = EXTRAS[server]
    if extra is not None and importlib.util.find_spec(module) is None:
        raise ServerExtraMissing(server, extra)
    require_supported(module)


def whole_seconds(value: float) -> int:
    """Servers that take whole seconds get at least what was asked for, never 0 (= off)."""
    return max(1, math.ceil(value))


def import_target(app: ASGIApp | str, factory: str | None, server: str, why: str) -> str:
    """The "module:function" factory a server needs to build the app in its own processes."""
    if isinstance(app, str):
        return app
    if factory is None:
        raise ValueError(f"{server} {why}: pass factory='module:function' (an app factory)")
    return factory


def load_factory(target: str) -> ASGIApp:
    """Call the zero-argument "module:function" factory and return its ASGI app."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ValueError(f"app factory must look like 'module:function', got {target!r}")
    factory = getattr(importlib.import_module(module_name), attr)
    app: ASGIApp = factory()
    return app
