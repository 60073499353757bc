# SPDX-License-Identifier: Apache-2.0
"""The granian runner: a supervisor process and ``workers`` worker processes.

granian always serves from separate worker processes, even with one worker, so it cannot
take an app object: each worker builds the app from the "module:function" factory.
Workers are started with ``spawn`` (a fresh interpreter, like uvicorn's and hypercorn's
workers) rather than granian's default ``fork``, so no thread, gRPC channel or telemetry
exporter of the supervisor is copied half-alive into a worker.

HTTP/1.1 only (``HTTPModes.http1``): an HTTP/2 prior-knowledge preface is refused, as on
uvicorn and hypercorn, so the REST API meets one parser with one set of limits. hyper's
HTTP/1 parser refuses the framing ambiguities of ``tests/adversarial`` by itself; the
head limits map onto its settings: ``max_buffer_size`` bounds the request head (431;
hyper's floor is 8192 bytes, so ``max_header_bytes`` below that acts as 8192).

Limits of granian 2.8, stated plainly: it always sends a ``Server`` header (``granian``,
or the app's own value; it cannot be removed — emmett-framework/granian#594); the
header-field count is hyper's fixed 100 (431 above it), whatever ``max_header_count``
says; with Content-Length and Transfer-Encoding together it decodes the body as chunked,
as RFC 9112 section 6.1 allows, and closes the connection after the response, so nothing hidden
in the body is served; it accepts a missing or repeated Host header, so the app's
trusted-host check sees them. It has no idle keep-alive timeout of its own: the header-read
timeout also runs while a kept-alive connection waits for its next request, so it is
set to ``keep_alive`` (a balancer must never reuse a connection we closed) and
``header_read_timeout`` does not apply: a slow client (slowloris) is cut after
``keep_alive`` seconds (75 by default), not ``header_read_timeout``. Nothing in 2.8's
``HTTP1Settings`` (header-read timeout, keep-alive on/off, buffer size, pipeline flush)
separates the two, so a runner bound to an address other hosts can reach logs one
warning at start-up (``granian_slow_head_bound``): such a granian belongs behind a proxy
or load balancer that buffers request heads. A worker drains
without a deadline, so the supervisor kills a worker still busy after ``shutdown_grace``
(its lifespan shutdown then does not run; the exit code is still 0).

The granian classes and names used here beyond its documented API live in
``compat.granian``, with the version range they were checked against.
"""

from __future__ import annotations

import ipaddress
import multiprocessing

import structlog
from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels

from genkit_endpoints.compat.granian import ROUTE_TO_ROOT, MPServer, require_granian
from genkit_endpoints.http.types import ASGIApp
from genkit_endpoints.serving.config import ServerConfig
from genkit_endpoints.serving.runners._common import import_target, load_factory, whole_seconds

_HYPER_MIN_BUFFER = 8192  # hyper panics on a smaller max_buf_size

_log = structlog.get_logger(__name__)


def granian_server(target: str, cfg: ServerConfig) -> MPServer:
    """A granian server for the "module:function" factory ``target``, settings from ``cfg``."""
    return MPServer(
        target,
        address=cfg.host,
        port=cfg.port,
        interface=Interfaces.ASGI,  # ASGI with lifespan (ASGINL would skip it)
        factory=True,
        workers=cfg.workers,
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(
            header_read_timeout=whole_seconds(cfg.keep_alive) * 1000,
            max_buffer_size=max(_HYPER_MIN_BUFFER, cfg.max_header_bytes),
        ),
        log_enabled=True,
        log_level=LogLevels(cfg.log_level),
        log_dictconfig=ROUTE_TO_ROOT,
        log_access=False,  # the app writes its own access log
        # granian's default (None) waits forever for a worker that does not finish.
        workers_kill_timeout=whole_seconds(cfg.shutdown_grace),
        # A crashed worker stops the service; the orchestrator restarts the whole unit.
        respawn_failed_workers=False,
    )


def slow_head_exposed(cfg: ServerConfig) -> bool:
    """Whether clients on other hosts can hold a connection with a slow request head for
    longer than ``header_read_timeout`` (granian cuts it after ``keep_alive`` only).

    A loopback address only hears this host (a sidecar proxy, tests); a host name may
    resolve to anything, so it counts as reachable.
    """
    if whole_seconds(cfg.keep_alive) <= cfg.header_read_timeout:
        return False
    if cfg.host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(cfg.host.strip("[]")).is_loopback
    except ValueError:
        return True


def warn_slow_heads(cfg: ServerConfig) -> None:
    """Say once, at start-up, what granian cannot bound, and what to do about it."""
    if slow_head_exposed(cfg):
        _log.warning(
            "granian_slow_head_bound",
            host=cfg.host,
            slow_head_seconds=whole_seconds(cfg.keep_alive),
            header_read_timeout=cfg.header_read_timeout,
            advice=(
                "granian cuts a slow request head only after KEEP_ALIVE_TIMEOUT: serve it "
                "behind a proxy or load balancer that buffers request heads, or use "
                "--server uvicorn or hypercorn"
            ),
        )


def run_granian(app: ASGIApp | str, cfg: ServerConfig, *, factory: str | None = None) -> None:
    """Serve until SIGTERM/SIGINT, drain for up to ``cfg.shutdown_grace``, return (exit 0).

    The supervisor forwards the signal to every worker as SIGTERM; a worker's asyncio loop
    handles it, after the app's ``Lifecycle``, chained in front from the lifespan.
    """
    require_granian()  # in the supervisor, before any worker exists
    target = import_target(app, factory, "granian", "serves from worker processes")
    warn_slow_heads(cfg)
    # The runner owns the process from here on; granian reads the start method per spawn.
    multiprocessing.set_start_method("spawn", force=True)
    granian_server(target, cfg).serve(target_loader=load_factory)
