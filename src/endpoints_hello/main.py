"""Command line entry point: ``endpoints-hello`` / ``python -m endpoints_hello``.

Parses flags, builds settings once, configures logging, builds the service and hands it
to the chosen server. A bad flag or setting is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from pydantic import ValidationError

from endpoints_hello.settings import Settings, load_settings
from genkit_endpoints.compat import UnsupportedDependency
from genkit_endpoints.http.types import ASGIApp
from genkit_endpoints.model.config import ProviderConfigError
from genkit_endpoints.security.masking import api_key_secrets, secret_values
from genkit_endpoints.serving.logging import configure_logging, default_format

PROG = "endpoints-hello"
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the whole usage block; one line is easier to read in a log.
        fail(message)


def fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Serve the sample Genkit flows over REST + SSE. Flags override "
        "environment variables, which override .<env>.env and .env files.",
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
    return p


def _one_line(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    where = f"{loc.upper()}: " if loc else ""
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"invalid setting {where}{msg}{more}"


def parse_settings(argv: Sequence[str] | None = None) -> Settings:
    """Settings from flags, environment and env files; exits 2 with one line on error."""
    args = build_parser().parse_args(argv)
    if args.env and not Path(f".{args.env}.env").is_file():
        fail(f"--env {args.env}: file .{args.env}.env not found in {Path.cwd()}")
    try:
        return load_settings(
            args.env,
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
        )
    except ValidationError as exc:
        fail(_one_line(exc))


def _configure_logging(settings: Settings) -> None:
    configure_logging(
        settings.log_level,
        settings.log_format or default_format(settings.debug),
        # Keys without a recognisable shape are masked by value.
        secrets=[
            *api_key_secrets(settings.api_keys),
            *secret_values(settings.gemini_api_key, settings.openai_api_key),
        ],
    )


def setup_from_env() -> Settings:
    """Settings and logging in a worker process, from the environment ``main`` exported."""
    settings = load_settings()
    _configure_logging(settings)
    return settings


WORKER_FACTORY = "endpoints_hello.app:create_asgi_from_env"


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_settings(argv)
    _configure_logging(settings)

    # Imported here: Genkit and the providers are heavy, and --help should stay instant.
    from genkit_endpoints.http.adapters import MissingExtraError, require_framework  # noqa: PLC0415
    from genkit_endpoints.model.providers import choose_model  # noqa: PLC0415
    from genkit_endpoints.policies.backends import RedisExtraMissing  # noqa: PLC0415
    from genkit_endpoints.serving.runners import (  # noqa: PLC0415
        ServerExtraMissing,
        needs_factory,
        require_server,
        run,
    )

    cfg = settings.server_config()
    try:
        require_server(settings.server)  # a missing extra: one line, before the slow build
        require_framework(settings.framework)
        # Each config checks its backend: a Redis URL without the redis extra is one line
        # now, not a traceback in every worker.
        settings.rate_limit_config()
        settings.cache_config()
        settings.breaker_config()
        if needs_factory(settings.server, cfg):
            # Worker processes build their own service; this process only supervises, so
            # it checks the model settings and leaves the building to the workers.
            choose_model(settings.provider_config())
            os.environ.update(settings.to_environ())  # how flags and env files reach them
            app: ASGIApp | None = None
        else:
            from endpoints_hello.app import create_service  # noqa: PLC0415

            app = create_service(settings).asgi
    except (
        ProviderConfigError,
        MissingExtraError,
        ServerExtraMissing,
        RedisExtraMissing,
        UnsupportedDependency,
    ) as exc:
        fail(str(exc))
    run(app if app is not None else WORKER_FACTORY, settings.server, cfg, factory=WORKER_FACTORY)
    return 0


if __name__ == "__main__":
    sys.exit(main())
