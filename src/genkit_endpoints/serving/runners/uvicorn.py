# SPDX-License-Identifier: Apache-2.0
"""The uvicorn runner: one process, or N workers under uvicorn's supervisor.

uvicorn installs its SIGTERM/SIGINT handlers with ``signal.signal`` before the lifespan
starts, in the process that serves, so the app's ``Lifecycle`` chains in front of them
unaided — in workers too, which the supervisor stops with SIGTERM.

HTTP/1.1 is parsed by httptools (llhttp), never h11, through
``compat.uvicorn.HardenedHttpToolsProtocol``, which adds the request-head limits and the
head read deadline uvicorn lacks; its docstring says why httptools. That module holds
every use of uvicorn internals; ``uvicorn_config`` checks the installed uvicorn against
the range they were checked with before anything else.
"""

from __future__ import annotations

import socket
from typing import Any

import uvicorn

from genkit_endpoints.compat.http1 import HeadLimits
from genkit_endpoints.compat.uvicorn import (
    DrainingMultiprocess,
    DrainingServer,
    HardenedHttpToolsProtocol,
    require_uvicorn,
)
from genkit_endpoints.http.types import ASGIApp
from genkit_endpoints.serving.config import ServerConfig
from genkit_endpoints.serving.runners._common import import_target, whole_seconds


class _Config(uvicorn.Config):
    """uvicorn's settings plus the head limits its protocol reads (pickled to workers)."""

    def __init__(self, app: ASGIApp | str, *, head_limits: HeadLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.head_limits = head_limits


def uvicorn_config(app: ASGIApp | str, cfg: ServerConfig) -> uvicorn.Config:
    """uvicorn settings from ``cfg``; a string ``app`` is a "module:factory" import string.

    Raises ``UnsupportedDependency`` when the installed uvicorn is outside the range the
    hooks in ``compat.uvicorn`` were checked against.
    """
    require_uvicorn()
    return _Config(
        app,
        head_limits=HeadLimits.of(cfg),
        http=HardenedHttpToolsProtocol,
        host=cfg.host,
        port=cfg.port,
        factory=isinstance(app, str),
        workers=cfg.workers,
        server_header=False,
        date_header=True,
        timeout_keep_alive=whole_seconds(cfg.keep_alive),
        # uvicorn's default (None) waits forever for open streams, so a drain would never end.
        timeout_graceful_shutdown=whole_seconds(cfg.shutdown_grace),
        log_config=None,  # our logging setup routes uvicorn's records
        log_level=cfg.log_level,
        access_log=False,  # the app writes its own access log
        lifespan="on",
        proxy_headers=False,  # client identity is decided by TRUSTED_PROXIES, not uvicorn
    )


def run_uvicorn(app: ASGIApp | str, cfg: ServerConfig, *, factory: str | None = None) -> None:
    """Serve until SIGTERM/SIGINT, drain for up to ``cfg.shutdown_grace``, return (exit 0)."""
    if cfg.workers == 1:
        DrainingServer(uvicorn_config(app, cfg)).run()
        return
    # Each worker is a fresh interpreter (spawn) and builds its own app from the factory.
    config = uvicorn_config(import_target(app, factory, "uvicorn", "workers build the app"), cfg)
    sock: socket.socket = config.bind_socket()
    DrainingMultiprocess(config, sockets=[sock]).run()
