"""Server runners (SPEC §6.1): bind, keep-alive, no ``Server`` header, graceful drain.

Servers' own defaults are not safe as shipped — uvicorn waits forever for open streams
unless ``timeout_graceful_shutdown`` is set — so every limit here comes from settings.
Readiness and gRPC health flip at the first signal through ``genkit_endpoints.lifecycle``,
which the app's lifespan chains in front of the server's own signal handlers.
"""

from __future__ import annotations

from types import FrameType

import uvicorn
from uvicorn.supervisors import Multiprocess

from genkit_endpoints.asgi.types import ASGIApp
from genkit_endpoints.config import ServerConfig

__all__ = ["ServerConfig", "run", "run_uvicorn"]


class _DrainingServer(uvicorn.Server):
    """uvicorn, exiting 0 after a clean drain.

    uvicorn >= 0.29 re-raises the signal after the drain, so the process would die
    "killed by SIGTERM"; a finished drain is a success. Module level so that worker
    processes can unpickle it.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def run_uvicorn(app: ASGIApp | str, cfg: ServerConfig) -> None:
    """Serve ``app`` (an app, or "module:factory" with workers) until a signal, then drain."""
    config = uvicorn.Config(
        app,
        host=cfg.host,
        port=cfg.port,
        factory=isinstance(app, str),
        workers=cfg.workers,
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
    server = _DrainingServer(config)
    if cfg.workers > 1:
        sock = config.bind_socket()
        # Workers run uvicorn's own Server; the supervisor (this process) exits 0.
        Multiprocess(config, sockets=[sock]).run()
    else:
        server.run()


def run(app: ASGIApp | str, server: str, cfg: ServerConfig) -> None:
    """Dispatch to the runner of ``server``."""
    if server != "uvicorn":
        raise ValueError(f"unknown server {server!r}")
    run_uvicorn(app, cfg)
