# SPDX-License-Identifier: Apache-2.0
"""gunicorn configuration for users who prefer gunicorn as the process manager.

Run (from the directory holding your ``.env``, if any)::

    pip install gunicorn uvicorn-worker
    gunicorn -c deploy/gunicorn.conf.py

gunicorn supervises ``WORKERS`` processes; each runs uvicorn (the maintained
``uvicorn-worker`` package; ``uvicorn.workers`` is deprecated) and builds its own app
from ``endpoints_hello.app:create_asgi_from_env()``, which reads the same variables as
``endpoints-hello`` (PORT, LOG_LEVEL, SHUTDOWN_GRACE, …) from the environment and ``.env``.
Command-line flags of ``endpoints-hello`` do not apply here: set variables instead.

The settings are read and validated here once, as the CLI does (a bad value stops the
master with the variable's name). What the built-in runners guarantee is kept: the
kit's ``gunicorn_worker_class`` sends no ``Server`` header, enforces the request-head
limits and drains for SHUTDOWN_GRACE seconds (uvicorn's own deadline, so the lifespan
shutdown still runs) before gunicorn's kill a little later; the drain hook runs at the
first signal because each worker's uvicorn installs its handlers before the lifespan
chains in front of them; keep-alive from KEEP_ALIVE_TIMEOUT; one log format (gunicorn's
own lines go through the root logger the kit's logging configures). With METRICS_ENABLED
(the default) every worker's counts add up in one ``/metrics``: the master gives the run
a directory in ``TMPDIR`` (or empties ``PROMETHEUS_MULTIPROC_DIR`` if you set it), drops
a dead worker's live gauges, and removes the directory it made when it exits.
"""

from __future__ import annotations

import math
from typing import Any

from gunicorn.glogging import Logger

from genkit_endpoints import (
    gunicorn_metrics_start,
    gunicorn_metrics_stop,
    gunicorn_metrics_worker_exit,
    gunicorn_worker_class,
    parse_settings,
    setup_logging,
)

# No flags here (gunicorn has its own): environment and env files; a bad value is one
# line on stderr and exit code 2, before gunicorn starts any worker.
_settings = parse_settings([])
_server = _settings.server_config()

wsgi_app = "endpoints_hello.app:create_asgi_from_env()"  # called once in every worker
bind = f"{_server.host}:{_server.port}"
workers = _server.workers
preload_app = False  # each worker builds its own service: nothing shared across fork
# Above typical load-balancer idle timeouts (60 s), so the balancer closes first.
keepalive = math.ceil(_server.keep_alive)
# uvicorn ends the drain at SHUTDOWN_GRACE; gunicorn's kill is only a backstop.
graceful_timeout = math.ceil(_server.shutdown_grace) + 5
loglevel = _server.log_level
accesslog = None  # no per-request lines from gunicorn (an access log belongs to the app)
errorlog = "-"
# gunicorn >= 25.1 opens a control socket under $HOME by default: one more writable path
# and attack surface in a container the orchestrator already manages (older versions
# ignore the unknown name).
control_socket_disable = True


class RootLogger(Logger):
    """gunicorn's own log lines through the root logger, in the app's format."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            log.handlers.clear()
            log.propagate = True


worker_class = gunicorn_worker_class(_server)
logger_class = RootLogger


def on_starting(server: Any) -> None:
    """Configure logging in the master (each worker's app factory does it again), and
    give this run its metrics directory before the first worker is forked."""
    setup_logging(_settings)
    if _settings.telemetry.metrics_enabled:
        gunicorn_metrics_start()


def child_exit(server: Any, worker: Any) -> None:
    """In the master, once a worker is reaped (also after a crash)."""
    gunicorn_metrics_worker_exit(worker.pid)


def on_exit(server: Any) -> None:
    gunicorn_metrics_stop()
