# SPDX-License-Identifier: Apache-2.0
"""Server runners shared by the baseline FastAPI apps (``bare_app.py``, ``naive_app.py``).

Each baseline is served with the option values of our runners in
``genkit_endpoints.serving.runners`` (same event loop, HTTP settings, keep-alive, no
access log, lifespan on, one worker), so a ratio against ours on one server measures what
the kit adds or saves, not server tuning. Server-side wrappers that are part of our
runners (hypercorn's in-flight task tracking) are deliberately not copied: they count as
ours. One set of runners for every baseline, so the baselines can never drift apart in
how they are served.

A runner takes the app factory as an import string (``module:function``): granian's
spawned worker has to import it by name anyway, and resolving the same string here for
uvicorn and hypercorn keeps one way of naming the app for all three.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import multiprocessing
from collections.abc import Callable, Sequence
from typing import Any

KEEP_ALIVE = 75  # seconds: ServerConfig.keep_alive
GRACE = 25  # seconds: ServerConfig.shutdown_grace
LOG_LEVEL = "warning"  # what the harness gives our app (LOG_LEVEL=warning)


def build_app(factory: str) -> Any:
    """Call the factory named ``module:function`` (bench/ is on ``sys.path``)."""
    module, _, name = factory.partition(":")
    create: Callable[[], Any] = getattr(importlib.import_module(module), name)
    return create()


def run_uvicorn(factory: str, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(
        build_app(factory),
        host=host,
        port=port,
        server_header=False,
        date_header=True,
        timeout_keep_alive=KEEP_ALIVE,
        access_log=False,
        log_level=LOG_LEVEL,
        # Also as in our runner: uvicorn's defaults would wrap the app in its
        # ProxyHeadersMiddleware, a layer ours does not have.
        lifespan="on",
        proxy_headers=False,
        timeout_graceful_shutdown=GRACE,
    )


def run_hypercorn(factory: str, host: str, port: int) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.workers = 1
    config.keep_alive_timeout = KEEP_ALIVE
    config.include_server_header = False
    config.include_date_header = True
    config.graceful_timeout = GRACE
    config.shutdown_timeout = GRACE
    config.errorlog = logging.getLogger("hypercorn.error")
    config.accesslog = None
    config.loglevel = LOG_LEVEL.upper()
    app = build_app(factory)
    try:  # our runner's loop: uvloop when installed
        import uvloop

        uvloop.run(serve(app, config))
    except ImportError:
        asyncio.run(serve(app, config))


def run_granian(factory: str, host: str, port: int) -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    # As our runner: workers are fresh interpreters (spawn), not forks of this process.
    multiprocessing.set_start_method("spawn", force=True)
    Granian(
        factory,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=1,
        http=HTTPModes.http1,  # as our runner: HTTP/1.1 only
        http1_settings=HTTP1Settings(header_read_timeout=KEEP_ALIVE * 1000),
        log_enabled=True,
        log_level=LogLevels(LOG_LEVEL),
        log_access=False,
        workers_kill_timeout=GRACE,
        respawn_failed_workers=False,
    ).serve()


RUNNERS: dict[str, Callable[[str, str, int], None]] = {
    "uvicorn": run_uvicorn,
    "granian": run_granian,
    "hypercorn": run_hypercorn,
}


def main(factory: str, description: str, argv: Sequence[str] | None = None) -> None:
    """The baselines' shared command line: ``--server``, ``--host``, ``--port``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--server", choices=tuple(RUNNERS), default="uvicorn")
    args = parser.parse_args(argv)
    RUNNERS[args.server](factory, args.host, args.port)
