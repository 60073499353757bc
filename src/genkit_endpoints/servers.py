"""Server runners (SPEC §6.1): bind, keep-alive, no ``Server`` header, graceful drain.

Servers' own defaults are not safe as shipped — uvicorn waits forever for open streams
unless ``timeout_graceful_shutdown`` is set — so every limit here comes from settings.
``on_shutdown_signal`` runs at the first SIGTERM/SIGINT, before the drain starts, so
readiness can turn 503 while in-flight requests finish.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from genkit_endpoints.asgi.types import ASGIApp


@dataclass(frozen=True)
class ServerConfig:
    host: str = "0.0.0.0"  # noqa: S104 - a container service listens on all interfaces
    port: int = 8080
    keep_alive: float = 75.0  # above typical load-balancer idle timeouts (60 s)
    shutdown_grace: float = 25.0
    log_level: str = "info"


def run_uvicorn(
    app: ASGIApp,
    cfg: ServerConfig,
    on_shutdown_signal: Callable[[], None] | None = None,
) -> None:
    """Serve ``app`` until SIGTERM/SIGINT, then drain for at most ``shutdown_grace``."""
    import uvicorn  # noqa: PLC0415 - only the selected server is imported

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if on_shutdown_signal is not None and not self.should_exit:
                # A signal handler runs inside whatever request the main thread was
                # serving; an empty context keeps that request's id off the drain log.
                contextvars.Context().run(on_shutdown_signal)
            super().handle_exit(sig, frame)
            # uvicorn >= 0.29 re-raises the signal after a clean drain, so the process
            # would die "killed by SIGTERM"; a finished drain is a success (exit 0).
            self._captured_signals.clear()

    config = uvicorn.Config(
        app,
        host=cfg.host,
        port=cfg.port,
        server_header=False,
        date_header=True,
        timeout_keep_alive=int(cfg.keep_alive),
        timeout_graceful_shutdown=int(cfg.shutdown_grace) or None,
        log_config=None,  # our logging setup routes uvicorn's records
        log_level=cfg.log_level,
        access_log=False,
        lifespan="on",
        proxy_headers=False,  # client identity is decided by TRUSTED_PROXIES, not uvicorn
    )
    _Server(config).run()


def run(app: ASGIApp, server: str, cfg: ServerConfig, **kwargs: Any) -> None:
    """Dispatch to the runner of ``server``."""
    if server != "uvicorn":
        raise ValueError(f"unknown server {server!r}")
    run_uvicorn(app, cfg, **kwargs)
