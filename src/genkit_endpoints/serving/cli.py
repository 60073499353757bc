# SPDX-License-Identifier: Apache-2.0
"""The command line every app gets: ``main(app, argv)`` / ``serve(app)``.

Parses flags, builds settings once, configures logging, builds the service and hands it
to the chosen server. A bad flag or setting is one line on stderr and exit code 2.
Nothing heavy is imported before the flags are parsed: ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

from pydantic import ValidationError

from genkit_endpoints.serving.settings import Settings, load_settings, one_line
from genkit_endpoints.telemetry.metrics import MULTIPROC_ENV

if TYPE_CHECKING:
    from genkit_endpoints.http.types import ASGIApp
    from genkit_endpoints.serving.app import App

__all__ = ["EXIT_USAGE", "build_parser", "main", "parse_settings", "serve"]

EXIT_USAGE = 2
_DEFAULT_PROG = "genkit-endpoints"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the whole usage block; one line is easier to read in a log.
        _fail(self.prog, message)


def _fail(prog: str, message: str) -> NoReturn:
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def build_parser(prog: str = _DEFAULT_PROG, description: str | None = None) -> _Parser:
    p = _Parser(
        prog=prog,
        description=(description or "Serve Genkit flows over REST + SSE and gRPC.")
        + " Flags override environment variables, which override .<env>.env and .env files.",
    )
    p.add_argument("--host", help="bind address (HOST, default 0.0.0.0)")
    p.add_argument("--port", type=int, help="REST port (PORT, default 8080)")
    p.add_argument("--framework", help="web framework (FRAMEWORK): fastapi|litestar|quart")
    p.add_argument("--server", help="ASGI server (SERVER): uvicorn|granian|hypercorn")
    p.add_argument("--workers", type=int, help="server processes (WORKERS, default 1)")
    p.add_argument("--grpc-port", type=int, help="gRPC port (GRPC_PORT, default 50051)")
    p.add_argument(
        "--no-grpc",
        dest="grpc_enabled",
        action="store_false",
        default=None,
        help="no native gRPC port (GRPC_ENABLED=false)",
    )
    p.add_argument(
        "--no-grpc-web",
        dest="grpc_web_enabled",
        action="store_false",
        default=None,
        help="no gRPC-Web on the REST port (GRPC_WEB_ENABLED=false)",
    )
    p.add_argument("--env", metavar="NAME", help="also read .NAME.env (after .env)")
    p.add_argument(
        "--debug",
        action="store_true",
        default=None,
        help="docs UI at /docs and console logs (DEBUG); never tracebacks in responses",
    )
    p.add_argument("--log-level", help="debug|info|warning|error|critical (LOG_LEVEL)")
    p.add_argument("--log-format", help="json|console (LOG_FORMAT; default: auto)")
    p.add_argument(
        "--model", help="e.g. googleai/gemini-2.5-flash, openai/gpt-4o-mini, offline/default"
    )
    p.add_argument(
        "--request-timeout", type=float, help="seconds until 504 (REQUEST_TIMEOUT, default 120)"
    )
    p.add_argument(
        "--otel-endpoint",
        help="OTLP collector URL; turns tracing on (OTEL_EXPORTER_OTLP_ENDPOINT)",
    )
    p.add_argument(
        "--no-telemetry",
        dest="otel_sdk_disabled",
        action="store_const",
        const=True,
        default=None,
        help="export nothing: no tracing, no Sentry (OTEL_SDK_DISABLED=true)",
    )
    p.add_argument("--audit-log", help="stdout|stderr|off|<file> (AUDIT_LOG, default off)")
    return p


def parse_settings(argv: Sequence[str] | None = None, app: App | None = None) -> Settings:
    """Settings from flags, environment and env files; exits 2 with one line on error."""
    prog = app.name if app is not None else _DEFAULT_PROG
    args = build_parser(prog, app.description if app is not None else None).parse_args(argv)
    if args.env and not Path(f".{args.env}.env").is_file():
        _fail(prog, f"--env {args.env}: file .{args.env}.env not found in {Path.cwd()}")
    try:
        return load_settings(
            args.env,
            app_group=app.settings if app is not None else None,
            host=args.host,
            port=args.port,
            framework=args.framework,
            server=args.server,
            workers=args.workers,
            grpc_port=args.grpc_port,
            grpc_enabled=args.grpc_enabled,
            grpc_web_enabled=args.grpc_web_enabled,
            debug=args.debug,
            log_level=args.log_level,
            log_format=args.log_format,
            model=args.model,
            request_timeout=args.request_timeout,
            otel_exporter_otlp_endpoint=args.otel_endpoint,
            otel_sdk_disabled=args.otel_sdk_disabled,
            audit_log=args.audit_log,
        )
    except ValidationError as exc:
        _fail(prog, one_line(exc))


def main(app: App, argv: Sequence[str] | None = None) -> int:
    """Run ``app`` from the command line ``argv`` (default: ``sys.argv[1:]``); 0 when done."""
    from genkit_endpoints.serving.app import setup_logging  # noqa: PLC0415

    settings = parse_settings(argv, app)
    setup_logging(settings)

    with _shared_metrics_dir(settings):
        _build_and_run(app, settings)
    return 0


def _build_and_run(app: App, settings: Settings) -> None:
    # Imported here: Genkit and the providers are heavy, and --help should stay instant.
    from genkit_endpoints.compat import UnsupportedDependency, require_supported  # noqa: PLC0415
    from genkit_endpoints.http.adapters import MissingExtraError, check_framework  # noqa: PLC0415
    from genkit_endpoints.model.config import ProviderConfigError, resolve_model  # noqa: PLC0415
    from genkit_endpoints.policies.backends import RedisExtraMissing  # noqa: PLC0415
    from genkit_endpoints.serving.app import (  # noqa: PLC0415
        APP_ENV,
        WORKER_FACTORY,
        create_service,
        locate,
    )
    from genkit_endpoints.serving.runners import (  # noqa: PLC0415
        ServerExtraMissing,
        needs_factory,
        require_server,
        run,
    )
    from genkit_endpoints.telemetry.audit import AuditSinkError, open_audit_log  # noqa: PLC0415
    from genkit_endpoints.telemetry.sentry import SentryExtraMissing, require_sentry  # noqa: PLC0415

    cfg = settings.server_config()
    server = settings.server.server
    try:
        require_server(server)  # a missing extra: one line, before the slow build
        check_framework(settings.server.framework)
        # Each config checks its backend: a Redis URL without the redis extra is one line
        # now, not a traceback in every worker.
        settings.rate_limit_config()
        settings.cache_config()
        settings.breaker_config()
        telemetry = settings.telemetry_config(app.name)
        require_sentry(telemetry.sentry)
        # An audit file that cannot be appended to: one line now, not in every worker.
        probe = open_audit_log(telemetry.audit_sink)
        if probe is not None:
            probe.close()
        if needs_factory(server, cfg):
            # Worker processes build their own service; this process only supervises, so
            # it checks the model settings and leaves the building (and importing Genkit,
            # a second time otherwise) to the workers.
            require_supported("genkit")  # package metadata only
            resolve_model(settings.provider_config())
            os.environ.update(settings.to_environ())  # how flags and env files reach them
            os.environ[APP_ENV] = locate(app)
            asgi: ASGIApp | None = None
        else:
            asgi = create_service(app, settings).asgi
    except (
        ProviderConfigError,
        MissingExtraError,
        ServerExtraMissing,
        RedisExtraMissing,
        SentryExtraMissing,
        AuditSinkError,
        UnsupportedDependency,
        LookupError,
    ) as exc:
        _fail(app.name, str(exc))
    run(asgi if asgi is not None else WORKER_FACTORY, server, cfg, factory=WORKER_FACTORY)


@contextlib.contextmanager
def _shared_metrics_dir(settings: Settings) -> Iterator[None]:
    """This run's Prometheus multiprocess directory around serving, when one is needed.

    Several workers each count their own requests, and a scrape reaches one of them; so
    they write their values to a directory of this run that every scrape sums (see
    ``genkit_endpoints.telemetry.multiprocess``). The variable has to be set before a
    worker imports ``prometheus_client``, whose mode is fixed at import: so here, before
    any worker starts, by a process that has not imported it. A directory the operator
    chose is honoured with one worker too, emptied of the last run's files first.

    The directory goes when the server returns: every runner returns, or raises
    ``SystemExit``, after SIGTERM/SIGINT. Until the server installs its own handlers, a
    SIGTERM unwinds through here too rather than ending the process on the spot.
    """
    if not settings.telemetry.metrics_enabled or (
        settings.server.workers <= 1 and not os.environ.get(MULTIPROC_ENV)
    ):
        yield
        return
    from genkit_endpoints.telemetry.multiprocess import metrics_run_dir  # noqa: PLC0415

    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_signal) if on_main else None
    try:
        with metrics_run_dir():
            yield
    finally:
        if on_main and signal.getsignal(signal.SIGTERM) is _exit_on_signal:
            signal.signal(signal.SIGTERM, previous)


def _exit_on_signal(signum: int, _: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def serve(app: App, argv: Sequence[str] | None = None) -> NoReturn:
    """``main`` as a script's last line: ``if __name__ == "__main__": serve(app)``."""
    sys.exit(main(app, argv))
