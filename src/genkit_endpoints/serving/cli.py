"""The command line every app gets: ``main(app, argv)`` / ``serve(app)``.

Parses flags, builds settings once, configures logging, builds the service and hands it
to the chosen server. A bad flag or setting is one line on stderr and exit code 2.
Nothing heavy is imported before the flags are parsed: ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from pydantic import ValidationError

from genkit_endpoints.serving.settings import Settings, load_settings, one_line

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
        help="serve REST only (GRPC_ENABLED=false)",
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

    # Imported here: Genkit and the providers are heavy, and --help should stay instant.
    from genkit_endpoints.compat import UnsupportedDependency  # noqa: PLC0415
    from genkit_endpoints.http.adapters import MissingExtraError, require_framework  # noqa: PLC0415
    from genkit_endpoints.model.config import ProviderConfigError  # noqa: PLC0415
    from genkit_endpoints.model.providers import choose_model  # noqa: PLC0415
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
        require_framework(settings.server.framework)
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
            # it checks the model settings and leaves the building to the workers.
            choose_model(settings.provider_config())
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
    return 0


def serve(app: App, argv: Sequence[str] | None = None) -> NoReturn:
    """``main`` as a script's last line: ``if __name__ == "__main__": serve(app)``."""
    sys.exit(main(app, argv))
