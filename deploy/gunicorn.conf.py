"""gunicorn configuration for users who prefer gunicorn as the process manager.

Run (from the directory holding your ``.env``, if any)::

    pip install gunicorn uvicorn-worker
    gunicorn -c deploy/gunicorn.conf.py

gunicorn supervises ``WORKERS`` processes; each runs uvicorn (the maintained
``uvicorn-worker`` package; ``uvicorn.workers`` is deprecated) and builds its own app
from ``endpoints_hello.app:create_asgi_from_env()``, which reads the same variables as
``endpoints-hello`` (PORT, LOG_LEVEL, SHUTDOWN_GRACE, …) from the environment and ``.env``.
Command-line flags of ``endpoints-hello`` do not apply here: set variables instead.

What the built-in runners guarantee, and how it is kept here: no ``Server`` header
(uvicorn adds one unless ``server_header=False``, which gunicorn's settings cannot
express — hence the worker subclass below); keep-alive from KEEP_ALIVE_TIMEOUT;
SIGTERM drains for SHUTDOWN_GRACE seconds (uvicorn's own deadline, so the lifespan
shutdown still runs) before gunicorn's kill a little later; the drain hook runs at the
first signal because each worker's uvicorn installs its handlers before the lifespan
chains in front of them; one log format (gunicorn's own lines go through the root
logger that ``genkit_endpoints.serving.logging`` configures).
"""

from __future__ import annotations

import math
import os
from typing import Any

from gunicorn.glogging import Logger
from uvicorn_worker import UvicornWorker

from genkit_endpoints.compat.http1 import HeadLimits
from genkit_endpoints.compat.uvicorn import HardenedHttpToolsProtocol, require_uvicorn

_grace = float(os.environ.get("SHUTDOWN_GRACE", "25"))
_level = os.environ.get("LOG_LEVEL", "info").lower()

wsgi_app = "endpoints_hello.app:create_asgi_from_env()"  # called once in every worker
bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8080')}"  # noqa: S104
workers = int(os.environ.get("WORKERS", "1"))
preload_app = False  # each worker builds its own service: nothing shared across fork
# Above typical load-balancer idle timeouts (60 s), so the balancer closes first.
keepalive = math.ceil(float(os.environ.get("KEEP_ALIVE_TIMEOUT", "75")))
# uvicorn ends the drain at SHUTDOWN_GRACE (below); gunicorn's kill is only a backstop.
graceful_timeout = math.ceil(_grace) + 5
loglevel = _level
accesslog = None  # no per-request lines from gunicorn (an access log belongs to the app)
errorlog = "-"
# gunicorn >= 25.1 opens a control socket under $HOME by default: one more writable path
# and attack surface in a container the orchestrator already manages (older versions
# ignore the unknown name).
control_socket_disable = True


class NoServerHeaderWorker(UvicornWorker):
    """uvicorn worker without a ``Server`` header and with a bounded drain."""

    CONFIG_KWARGS: dict[str, Any] = {  # noqa: RUF012 - uvicorn-worker's own extension point
        **UvicornWorker.CONFIG_KWARGS,
        "server_header": False,
        "date_header": True,
        # uvicorn's default (None) waits forever for open streams.
        "timeout_graceful_shutdown": max(1, math.ceil(_grace)),
        "lifespan": "on",
        "access_log": False,
        "proxy_headers": False,  # client identity is decided by TRUSTED_PROXIES
        # The kit's hardened protocol: strict framing, head size/count limits and a
        # head-read deadline (slowloris), as with `endpoints-hello --server uvicorn`.
        "http": HardenedHttpToolsProtocol,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.head_limits = HeadLimits(  # type: ignore[attr-defined]
            max_bytes=int(os.environ.get("MAX_HEADER_BYTES", "16384")),
            max_count=int(os.environ.get("MAX_HEADER_COUNT", "100")),
            read_timeout=float(os.environ.get("HEADER_READ_TIMEOUT", "10")),
        )


class RootLogger(Logger):
    """gunicorn's own log lines through the root logger, in the app's format."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            log.handlers.clear()
            log.propagate = True


worker_class = NoServerHeaderWorker
logger_class = RootLogger


def on_starting(server: Any) -> None:
    """Configure logging in the master; each worker's app factory does it again.

    First, check uvicorn against the range the hardened protocol was checked with: a
    refusal here stops gunicorn before any worker starts.
    """
    require_uvicorn()
    from genkit_endpoints.serving.logging import configure_logging, default_format  # noqa: PLC0415

    debug = os.environ.get("DEBUG", "").lower() in {"1", "true", "yes", "on"}
    fmt = os.environ.get("LOG_FORMAT", "").lower() or default_format(debug)
    configure_logging(_level, "console" if fmt == "console" else "json")
