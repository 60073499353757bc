# SPDX-License-Identifier: Apache-2.0
"""A gunicorn worker with the kit's uvicorn settings, for gunicorn as process manager.

The built-in runners already run N workers; this is for deployments that standardise on
gunicorn. The worker keeps what the uvicorn runner guarantees: no ``Server`` header
(gunicorn's settings cannot express ``server_header=False``, hence a subclass), a bounded
drain of ``shutdown_grace`` seconds, the lifespan on, no uvicorn access log (the app has
its own), proxy headers decided by the app's ``TRUSTED_PROXIES``, and the hardened HTTP
protocol with the request-head limits. Needs ``gunicorn`` and ``uvicorn-worker``.

The ``gunicorn_metrics_*`` functions are the master's hooks for Prometheus
multiprocess mode (``genkit_endpoints.telemetry.multiprocess``): a fresh directory for
the run before the first fork, a dead worker's live gauges dropped when gunicorn reaps
it — a crash or a ``max_requests`` recycle included — and the directory removed when
the master exits. gunicorn replaces workers as a matter of course, so the directory is
used with one worker too: a replacement keeps counting from where the old one stopped.
"""

from __future__ import annotations

import atexit
import math
import os
from typing import Any

from genkit_endpoints.serving.config import ServerConfig
from genkit_endpoints.telemetry.multiprocess import start_run_dir, stop_run_dir, worker_stopped

__all__ = [
    "gunicorn_metrics_start",
    "gunicorn_metrics_stop",
    "gunicorn_metrics_worker_exit",
    "gunicorn_worker_class",
]

# The run's directory and whether it was made here, with the master's pid. Module state,
# not an object in the config file: gunicorn executes its config file again on SIGHUP,
# and the directory of the run must outlive that.
_run: tuple[str, bool, int] | None = None


def gunicorn_worker_class(cfg: ServerConfig) -> type[Any]:
    """A ``UvicornWorker`` subclass serving as ``cfg`` says (``worker_class = …``)."""
    from uvicorn_worker import UvicornWorker  # type: ignore[import-untyped]  # noqa: PLC0415

    from genkit_endpoints.compat.http1 import HeadLimits  # noqa: PLC0415
    from genkit_endpoints.compat.uvicorn import (  # noqa: PLC0415
        HardenedHttpToolsProtocol,
        require_uvicorn,
    )

    # The hardened protocol was checked against a range of uvicorn versions: a refusal
    # here stops gunicorn while it reads its configuration, before any worker starts.
    require_uvicorn()
    limits = HeadLimits.of(cfg)

    class KitUvicornWorker(UvicornWorker):  # type: ignore[misc]
        CONFIG_KWARGS: dict[str, Any] = {  # noqa: RUF012 - uvicorn-worker's extension point
            **UvicornWorker.CONFIG_KWARGS,
            "server_header": False,
            "date_header": True,
            # uvicorn's default (None) waits forever for open streams.
            "timeout_graceful_shutdown": max(1, math.ceil(cfg.shutdown_grace)),
            "lifespan": "on",
            "access_log": False,
            "proxy_headers": False,
            "http": HardenedHttpToolsProtocol,
        }

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.config.head_limits = limits

    return KitUvicornWorker


def gunicorn_metrics_start() -> str:
    """``on_starting``: this run's metrics directory, before any worker is forked.

    The master must not have imported ``prometheus_client`` yet (the kit's config does
    not): forked workers would inherit its single-process mode.
    """
    global _run  # noqa: PLW0603 - one run per master process
    if _run is None:
        path, created = start_run_dir()
        _run = (path, created, os.getpid())
        # A master that dies of an error skips ``on_exit``; forked workers inherit this
        # handler, hence the pid check in ``gunicorn_metrics_stop``.
        atexit.register(gunicorn_metrics_stop)
    return _run[0]


def gunicorn_metrics_worker_exit(pid: int) -> None:
    """``child_exit``: the reaped worker's live gauges stop counting in later scrapes."""
    if _run is not None:
        worker_stopped(pid)


def gunicorn_metrics_stop() -> None:
    """``on_exit``: remove the directory ``gunicorn_metrics_start`` made (only in the master)."""
    global _run  # noqa: PLW0603
    if _run is None or _run[2] != os.getpid():
        return
    path, created, _ = _run
    _run = None
    stop_run_dir(path, created)
