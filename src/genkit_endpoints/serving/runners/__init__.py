# SPDX-License-Identifier: Apache-2.0
"""Server runners: uvicorn, granian or hypercorn, one process or N workers.

Every runner binds host and port, keeps idle connections for ``keep_alive`` seconds,
sends no ``Server`` header where the server allows it, leaves logging to
``genkit_endpoints.serving.logging``, runs the ASGI lifespan, and on SIGTERM/SIGINT stops
accepting, gives in-flight work ``shutdown_grace`` seconds, then returns (exit code 0).
Servers' own defaults are not safe as shipped, so every limit is set explicitly.
Every runner serves HTTP/1.1 only (no h2c) and bounds a request head in bytes, fields and
time (``ServerConfig``) before the app sees it, refusing ambiguous framing (request
smuggling): uvicorn through ``compat.uvicorn`` (httptools, not h11 — it says why),
hypercorn through ``compat.hypercorn``, granian through hyper's own parser and settings,
with the limits granian cannot meet stated in ``granian``. ``tests/adversarial`` holds
each of them to it. Whatever a runner uses of a server's internals lives in
``genkit_endpoints.compat``; ``require_server`` and each runner check the installed
server against the range those hooks were checked with, before any worker starts.
Readiness and gRPC health flip at the first signal through ``genkit_endpoints.serving.lifecycle``,
which the app's lifespan chains in front of the signal handlers of the serving process.
"""

from __future__ import annotations

from genkit_endpoints.http.types import ASGIApp
from genkit_endpoints.serving.config import ServerConfig
from genkit_endpoints.serving.runners._common import ServerExtraMissing, require_server
from genkit_endpoints.serving.runners.uvicorn import run_uvicorn

__all__ = [
    "SERVERS",
    "ServerConfig",
    "ServerExtraMissing",
    "needs_factory",
    "require_server",
    "run",
    "run_uvicorn",
]

SERVERS = ("uvicorn", "granian", "hypercorn")


def needs_factory(server: str, cfg: ServerConfig) -> bool:
    """Whether ``run`` builds the app in other processes from ``factory`` (not ``app``).

    True for several workers on every server, and always for granian, whose workers are
    separate processes even when there is one. The factory then reads its settings from
    the environment, so the caller exports them first.
    """
    return cfg.workers > 1 or server == "granian"


def run(app: ASGIApp | str, server: str, cfg: ServerConfig, *, factory: str | None = None) -> None:
    """Serve ``app`` with ``server`` until a signal, then drain.

    ``app`` is the ASGI app, or a "module:function" factory string. ``factory`` is the
    "module:function" of a zero-argument app factory, used where ``needs_factory`` says
    so. Raises ``ServerExtraMissing`` when the server's optional package is missing.
    """
    require_server(server)
    if server == "uvicorn":
        run_uvicorn(app, cfg, factory=factory)
    elif server == "granian":
        from genkit_endpoints.serving.runners.granian import run_granian  # noqa: PLC0415 - optional

        run_granian(app, cfg, factory=factory)
    else:
        from genkit_endpoints.serving.runners.hypercorn import run_hypercorn  # noqa: PLC0415 - optional

        run_hypercorn(app, cfg, factory=factory)
