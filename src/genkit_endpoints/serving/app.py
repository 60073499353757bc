# SPDX-License-Identifier: Apache-2.0
"""What an app hands the kit (``App``), and how the kit builds the service from it.

An app is flows + schemas + a route table: ``App.routes`` receives an ``AppContext``
(the Genkit instance with the chosen model, the ``ModelClient`` with the call policy and
the breaker, the ``ImageFetcher``, the settings) and returns its ``FlowRoute`` list (the
kit builds the table, computing each cacheable flow's version from the chosen model, the
call policy and the app's prompt files) or a ``RouteTable`` it built itself. The kit
does the rest: the model choice, Genkit with the app's prompts, the policies,
``build_service``. Nothing heavy is imported here at module level, so a CLI that only
parses flags (``--help``, a bad value) never imports Genkit.

Worker processes (``--workers N``, granian) build their own service. They find the app
through ``GENKIT_ENDPOINTS_APP`` ("module:attr", or "path/to/file.py:attr" for a script
run by path), which ``locate`` derives from where the ``App`` object lives.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from genkit_endpoints.serving.settings import Settings, SettingsGroup, load_settings

if TYPE_CHECKING:
    from genkit import Genkit

    from genkit_endpoints.core.routes import FlowRoute, RouteTable
    from genkit_endpoints.http.types import ASGIApp
    from genkit_endpoints.model.client import ModelClient
    from genkit_endpoints.security.images import ImageFetcher
    from genkit_endpoints.serving.service import Service

__all__ = [
    "APP_ENV",
    "WORKER_FACTORY",
    "App",
    "AppContext",
    "create_service",
    "locate",
]

# The variable that tells a worker process where the app is, and the worker's factory.
APP_ENV = "GENKIT_ENDPOINTS_APP"
WORKER_FACTORY = "genkit_endpoints.serving.app:asgi_from_env"
# The name a script loaded by path gets in a worker: not "__main__", so its
# ``if __name__ == "__main__": serve(app)`` does not start a second server there.
_SCRIPT_MODULE = "_genkit_endpoints_app_script"


@dataclass(frozen=True)
class AppContext:
    """What the kit built for the app's route table factory."""

    ai: Genkit
    llm: ModelClient
    images: ImageFetcher
    settings: Settings


@dataclass(frozen=True)
class App:
    """An app served by the kit.

    ``name`` is the command's name in ``--help`` and errors, and the API title unless
    ``title`` is given. ``routes`` defines the flows on ``ctx.ai`` and returns their
    routes (or a ``RouteTable``). ``prompt_dir`` holds Dotprompt files; ``grpc_service``
    is the generated module and service ("pkg.my_pb2:MyService") served next to REST
    (None: REST only); ``settings`` is a ``SettingsGroup`` subclass of the app's own variables.
    """

    name: str
    routes: Callable[[AppContext], RouteTable | Iterable[FlowRoute]]
    description: str | None = None
    title: str | None = None
    prompt_dir: Path | str | None = None
    grpc_service: str | None = None
    settings: type[SettingsGroup] | None = None

    def load_settings(self, env: str | None = None, **overrides: object) -> Settings:
        """The kit's settings plus the app's own group (env files, environment, overrides)."""
        return load_settings(env, app_group=self.settings, **overrides)

    def asgi_from_env(self) -> ASGIApp:
        """The ASGI app from the environment alone: for workers and process managers."""
        settings = self.load_settings()
        setup_logging(settings)
        return create_service(self, settings).asgi


def setup_logging(settings: Settings) -> None:
    """Logging as the settings say, with every configured secret masked by value."""
    # Here, not at the top: structlog (and the rich tracebacks it loads) is for serving,
    # not for ``--help`` or a bad flag.
    from genkit_endpoints.serving.logging import configure_logging, default_format  # noqa: PLC0415

    configure_logging(
        settings.logging.log_level,
        settings.logging.log_format or default_format(settings.server.debug),
        secrets=settings.secrets(),
        # With tracing on, every line inside a span names its trace and span.
        trace_ids=settings.telemetry.tracing_enabled,
    )


def create_service(app: App, settings: Settings) -> Service:
    """Build the whole service from settings (no I/O until the server starts it)."""
    telemetry = settings.telemetry_config(app.name)
    tracing = None
    if telemetry.tracing is not None:
        # First, even before Genkit is imported: the global tracer provider must exist
        # before anything opens a span (Genkit's developer mode then exports through it).
        from genkit_endpoints.telemetry.tracing import setup_tracing  # noqa: PLC0415

        settings.telemetry.export_otel_environment()  # flags and env files, for the SDK
        tracing = setup_tracing(telemetry.tracing, secrets=telemetry.secrets)
    # Imported here: Genkit and the providers are heavy (see the module docstring).
    from genkit import Genkit  # noqa: PLC0415

    from genkit_endpoints.compat.genkit import (  # noqa: PLC0415
        lighten_debug_checks,
        lighten_hook_dispatch,
        set_span_content,
        skip_unconsumed_spans,
    )

    # Genkit serialises every input and output into its spans; only its Dev UI
    # (GENKIT_ENV=dev) and an exporter with content capture on ever read them.
    set_span_content(
        os.environ.get("GENKIT_ENV") == "dev"
        or (telemetry.tracing is not None and telemetry.tracing.capture_content)
    )
    lighten_hook_dispatch()  # the call policy is a Genkit middleware: cheaper per call
    lighten_debug_checks()  # asked several times per generate
    # Without a tracer provider (tracing off, no Dev UI) Genkit's spans are no-ops that
    # still cost their bookkeeping on every flow, generate, model and tool call.
    skip_unconsumed_spans()

    from genkit_endpoints.core.health import Readiness  # noqa: PLC0415
    from genkit_endpoints.core.routes import RouteTable  # noqa: PLC0415
    from genkit_endpoints.model.client import ModelClient  # noqa: PLC0415
    from genkit_endpoints.model.providers import choose_model  # noqa: PLC0415
    from genkit_endpoints.policies.breaker import Breaker  # noqa: PLC0415
    from genkit_endpoints.policies.redis import RedisConnections  # noqa: PLC0415
    from genkit_endpoints.security.images import ImageFetcher  # noqa: PLC0415
    from genkit_endpoints.serving.logging import access_logger, default_format  # noqa: PLC0415
    from genkit_endpoints.serving.service import ServiceConfig, build_service  # noqa: PLC0415
    from genkit_endpoints.telemetry.audit import open_audit_log  # noqa: PLC0415
    from genkit_endpoints.telemetry.observer import NO_OBSERVER  # noqa: PLC0415
    from genkit_endpoints.telemetry.sentry import setup_sentry  # noqa: PLC0415

    # Per process: every worker reports its own 500s and INTERNALs (None: SENTRY_DSN unset).
    crash_reports = setup_sentry(telemetry.sentry, list(telemetry.secrets))
    metrics = None
    if telemetry.metrics:
        from genkit_endpoints.telemetry.metrics import PrometheusMetrics  # noqa: PLC0415

        metrics = PrometheusMetrics()
    observer = metrics if metrics is not None else NO_OBSERVER
    choice = choose_model(settings.provider_config())
    ai = Genkit(plugins=list(choice.plugins), model=choice.model, prompt_dir=app.prompt_dir)
    # One registry: the breaker, the cache and the limiter on one Redis share one pool,
    # one outage verdict and one readiness entry per feature.
    readiness = Readiness()
    connections = RedisConnections(observer=observer, readiness=readiness)
    cb = settings.breaker_config()
    breaker = Breaker(cb, connections=connections, observer=observer) if cb is not None else None
    llm = ModelClient(
        ai, settings.model_call_policy(), breaker, observer=observer, model=choice.model
    )
    images = ImageFetcher(settings.image_fetch_config())
    made = app.routes(AppContext(ai=ai, llm=llm, images=images, settings=settings))
    table = (
        made
        if isinstance(made, RouteTable)
        else RouteTable.build(
            made, model=choice.model, model_config=llm.policy, prompt_dir=app.prompt_dir
        )
    )
    debug = settings.server.debug
    log_format = settings.logging.log_format or default_format(debug)
    cfg = ServiceConfig(
        framework=settings.server.framework,
        title=app.title or app.name,
        debug=debug,
        http=settings.http_policy(),
        shutdown_grace=settings.server.shutdown_grace,
        grpc=settings.grpc_config() if settings.grpc.grpc_enabled else None,
        grpc_service=app.grpc_service,
        grpc_web=settings.grpc.grpc_web_enabled,
        api_keys=settings.api_keyring(),
        rate_limit=settings.rate_limit_config(),
        cache=settings.cache_config(),
        access_logger=access_logger(log_format, trace_ids=tracing is not None),
        grpc_access_logger=access_logger(
            log_format, "genkit_endpoints.grpc", trace_ids=tracing is not None
        ),
        connections=connections,
        # Closed at the end of the lifespan; the crash reporter last, so its flush sends
        # everything reported until then.
        closing=tuple(r for r in (breaker, crash_reports) if r is not None),
        readiness=readiness,
        metrics=metrics,
        metrics_key=telemetry.metrics_key,
        audit=open_audit_log(telemetry.audit_sink),
        tracing=tracing,
    )
    return build_service(ai, choice, table, cfg)


def locate(app: App) -> str:
    """Where a worker process finds ``app``: "module:attr" or "path/to/script.py:attr".

    Any imported module holding the object as a global will do (``python -m pkg`` and a
    console script both import one). An app defined only in the script that was run is
    found through ``__main__``: by its module name when run with ``-m``, else by its
    file, which the worker loads by path. Raises ``LookupError`` when it is nowhere.
    """
    for name, module in list(sys.modules.items()):
        if name in ("__main__", "__mp_main__") or not isinstance(module, ModuleType):
            continue
        attr = _attr_of(module, app)
        if attr is not None:
            return f"{name}:{attr}"
    main = sys.modules.get("__main__")
    attr = _attr_of(main, app) if main is not None else None
    if main is not None and attr is not None:
        spec = getattr(main, "__spec__", None)
        if spec is not None and spec.name not in ("__main__", ""):
            return f"{spec.name}:{attr}"
        file = getattr(main, "__file__", None)
        if file:
            return f"{Path(file).resolve()}:{attr}"
    raise LookupError(
        f"worker processes cannot find the app {app.name!r}: assign it to a module-level "
        "variable (app = App(...)) of an importable module or of the script you run"
    )


def _attr_of(module: ModuleType, app: App) -> str | None:
    try:
        names = list(vars(module).items())
    except TypeError:
        return None
    for attr, value in names:
        if value is app and not attr.startswith("__"):
            return attr
    return None


def load_app(target: str) -> App:
    """The ``App`` at "module:attr" or "path/to/script.py:attr" (see ``locate``)."""
    where, sep, attr = target.rpartition(":")
    if not sep or not where or not attr:
        raise ValueError(
            f"{APP_ENV} must look like 'module:attr' or 'file.py:attr', got {target!r}"
        )
    module = _load_script(Path(where)) if where.endswith(".py") else importlib.import_module(where)
    app = getattr(module, attr)
    if not isinstance(app, App):
        raise TypeError(f"{target} is not a genkit_endpoints.App")
    return app


def _load_script(path: Path) -> ModuleType:
    if _SCRIPT_MODULE in sys.modules:
        return sys.modules[_SCRIPT_MODULE]
    # The script's own directory first, as when it was run: its sibling imports resolve.
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(_SCRIPT_MODULE, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the app script {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_SCRIPT_MODULE] = module
    spec.loader.exec_module(module)
    return module


def asgi_from_env() -> ASGIApp:
    """Zero-argument factory a worker process calls (``WORKER_FACTORY``)."""
    return load_app(os.environ[APP_ENV]).asgi_from_env()
