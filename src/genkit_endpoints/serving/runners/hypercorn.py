# SPDX-License-Identifier: Apache-2.0
"""The hypercorn runner: one process, or N workers under our supervisor.

hypercorn's own signal handling does not suit the drain: ``serve`` registers its
handlers with ``loop.add_signal_handler`` and ``hypercorn.run`` never lets workers see
the signal at all (they poll a shared event). So the runner installs plain
``signal.signal`` handlers that fire hypercorn's ``shutdown_trigger`` — the app's
``Lifecycle`` chains in front of them from the lifespan — and runs several workers
under ``_supervisor``, which forwards the signal to each of them.

Every serving process speaks HTTP/1.1 only, through ``compat.hypercorn.HardenedH11Protocol``
(request-head limits and rules, a head read deadline; its docstring says what stock
hypercorn leaves open). The installed hypercorn is checked against the range that hook
was checked with when the runner starts, before any worker.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable
from types import FrameType
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

from genkit_endpoints.compat.http1 import HeadLimits
from genkit_endpoints.compat.hypercorn import install_hardened_protocol, require_hypercorn
from genkit_endpoints.http.types import ASGIApp, Receive, Scope, Send
from genkit_endpoints.serving.config import ServerConfig
from genkit_endpoints.serving.runners._common import import_target, load_factory
from genkit_endpoints.serving.runners._supervisor import STOP_SIGNALS, supervise

_log = logging.getLogger("hypercorn.error")


class _Config(Config):
    """hypercorn's settings plus the head limits its (hardened) protocol reads."""

    head_limits = HeadLimits()


def hypercorn_config(cfg: ServerConfig) -> Config:
    """hypercorn settings from ``cfg``; every default that matters is overridden."""
    config = _Config()
    config.head_limits = HeadLimits.of(cfg)
    # A partial head is buffered up to this; complete heads are measured by the protocol.
    config.h11_max_incomplete_size = cfg.max_header_bytes
    config.alpn_protocols = ["http/1.1"]  # HTTP/2 nowhere, also should TLS be added
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    config.bind = [f"{host}:{cfg.port}"]
    config.workers = cfg.workers  # >1: listening sockets get SO_REUSEPORT
    config.keep_alive_timeout = cfg.keep_alive  # hypercorn's default is 5 s
    config.include_server_header = False  # default: "server: hypercorn-h11"
    config.include_date_header = True
    config.graceful_timeout = cfg.shutdown_grace  # hypercorn's default is 3 s
    config.shutdown_timeout = cfg.shutdown_grace  # bounds the lifespan shutdown (default 60 s)
    # A Logger object, not "-": hypercorn would attach its own stderr handler and format.
    config.errorlog = _log
    config.accesslog = None  # the app writes its own access log
    config.loglevel = cfg.log_level.upper()
    return config


class _Stop:
    """SIGTERM/SIGINT as hypercorn's ``shutdown_trigger``; remembers a signal that came early."""

    def __init__(self) -> None:
        self.requested = False
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)

    def _handle(self, sig: int, frame: FrameType | None) -> None:
        self.requested = True
        if self._loop is not None and self._event is not None:
            self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        if not self.requested:
            await self._event.wait()


class _InFlight:
    """The app, with a handle on the tasks of its in-flight requests.

    From Python 3.12 ``asyncio.Server.wait_closed()`` waits for every open connection,
    and hypercorn awaits it *before* its ``graceful_timeout`` starts: a stream longer
    than the grace would hold the process forever. Cancelling what still runs at the
    grace ends those connections, so hypercorn's drain and lifespan shutdown finish.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.tasks: set[asyncio.Task[Any]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        if scope["type"] == "lifespan" or task is None:
            await self.app(scope, receive, send)
            return
        self.tasks.add(task)
        try:
            await self.app(scope, receive, send)
        finally:
            self.tasks.discard(task)

    def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()


def _quiet_cancelled(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # asyncio's stream callback calls ``task.exception()`` on the connection tasks that
    # the end of the grace cancelled, and would log each as an error with a traceback.
    if not isinstance(context.get("exception"), asyncio.CancelledError):
        loop.default_exception_handler(context)


async def _serve(app: ASGIApp, config: Config, stop: _Stop) -> None:
    install_hardened_protocol()  # in the process that serves: workers are fresh interpreters
    _log.setLevel(config.loglevel)
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_quiet_cancelled)
    main = asyncio.current_task()
    in_flight = _InFlight(app)
    timers: list[asyncio.TimerHandle] = []

    async def shutdown_trigger() -> None:
        await stop.wait()
        timers.append(loop.call_later(config.graceful_timeout, in_flight.cancel))
        if main is not None:
            # Backstop for what holds a connection without a request task (a client
            # still sending headers): stop without waiting for it, and without lifespan
            # shutdown, once the grace and the lifespan's own limit are both spent.
            limit = config.graceful_timeout + config.shutdown_timeout + 1
            timers.append(loop.call_later(limit, main.cancel))

    try:
        await serve(in_flight, config, shutdown_trigger=shutdown_trigger)  # type: ignore[arg-type]
    except asyncio.CancelledError:
        if len(timers) < 2:
            raise
        _log.error("drain exceeded its deadline; stopped without lifespan shutdown")
    finally:
        for timer in timers:
            timer.cancel()


def _run_loop(main: Callable[[], Any]) -> None:
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up, as uvicorn's "auto" loop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


def _worker(config: Config, sock: socket.socket, factory: str) -> None:
    """One worker process: the inherited listening socket, the app from ``factory``."""
    stop = _Stop()
    stop.install()  # before the slow app import: a signal during start-up is not lost
    config.bind = [f"fd://{sock.detach()}"]
    config.workers = 1
    app = load_factory(factory)
    _run_loop(lambda: _serve(app, config, stop))


def run_hypercorn(app: ASGIApp | str, cfg: ServerConfig, *, factory: str | None = None) -> None:
    """Serve until SIGTERM/SIGINT, drain for up to ``cfg.shutdown_grace``, return (exit 0)."""
    require_hypercorn()  # here, once: workers would each fail with their own traceback
    config = hypercorn_config(cfg)
    if cfg.workers == 1:
        stop = _Stop()
        stop.install()
        served = load_factory(app) if isinstance(app, str) else app
        _run_loop(lambda: _serve(served, config, stop))
        return
    target = import_target(app, factory, "hypercorn", "workers build the app")
    (sock,) = config.create_sockets().insecure_sockets  # bound once: a busy port fails here
    # Workers drain on their own deadline; the supervisor's is a backstop above it.
    stop_timeout = config.graceful_timeout + config.shutdown_timeout + 5
    code = supervise(_worker, (config, sock, target), cfg.workers, stop_timeout, sock.close)
    if code:
        raise SystemExit(code)
