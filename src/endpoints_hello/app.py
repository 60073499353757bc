"""Assembly: settings in, the served application out.

The app's own part is small — the model choice, the Genkit instance with the app's
prompts, the flows and their route table, the gRPC service of the app's proto; the kit's
``build_service`` wires everything else. Nothing is built at import time.
"""

from __future__ import annotations

from pathlib import Path

from genkit import Genkit

from endpoints_hello.flows import build_routes
from endpoints_hello.settings import Settings
from genkit_endpoints.http.types import ASGIApp
from genkit_endpoints.model.client import ModelClient
from genkit_endpoints.model.providers import choose_model
from genkit_endpoints.policies.breaker import Breaker
from genkit_endpoints.security.images import ImageFetcher
from genkit_endpoints.serving.logging import access_logger, default_format
from genkit_endpoints.serving.service import Service, ServiceConfig, build_service

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
GRPC_SERVICE = "endpoints_hello.generated.genkit_sample_pb2:GenkitService"

__all__ = ["PROMPTS_DIR", "Service", "create_asgi_from_env", "create_service"]


def create_service(settings: Settings) -> Service:
    """Build the whole service from settings (no I/O until the server starts it)."""
    choice = choose_model(settings.provider_config())
    ai = Genkit(plugins=list(choice.plugins), model=choice.model, prompt_dir=PROMPTS_DIR)
    images = ImageFetcher(settings.image_fetch_config())
    cb = settings.breaker_config()
    breaker = Breaker(cb) if cb is not None else None
    llm = ModelClient(ai, settings.model_call_policy(), breaker)
    table = build_routes(ai, llm, images)
    cfg = ServiceConfig(
        framework=settings.framework,
        title="endpoints-hello",
        debug=settings.debug,
        http=settings.http_policy(),
        shutdown_grace=settings.shutdown_grace,
        grpc=settings.grpc_config() if settings.grpc_enabled else None,
        grpc_service=GRPC_SERVICE,
        api_keys=settings.api_keyring(),
        rate_limit=settings.rate_limit_config(),
        cache=settings.cache_config(),
        access_logger=access_logger(settings.log_format or default_format(settings.debug)),
        closing=(breaker,) if breaker is not None else (),
    )
    return build_service(ai, choice, table, cfg)


def create_asgi_from_env() -> ASGIApp:
    """ASGI factory for worker processes: settings from the environment ``main`` exported."""
    from endpoints_hello.main import setup_from_env  # noqa: PLC0415 - avoid an import cycle

    return create_service(setup_from_env()).asgi
