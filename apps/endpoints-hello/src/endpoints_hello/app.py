# SPDX-License-Identifier: Apache-2.0
"""The sample app as the kit serves it: its name, its route table, its prompts and proto.

Nothing is built at import time, and the flows (which import Genkit) are imported only
when the kit builds the service, so ``endpoints-hello --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from genkit_endpoints import App

if TYPE_CHECKING:
    from genkit_endpoints import AppContext, ASGIApp, RouteTable

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
GRPC_SERVICE = "endpoints_hello.generated.genkit_sample_pb2:GenkitService"

__all__ = ["APP", "PROMPTS_DIR", "create_asgi_from_env"]


def routes(ctx: AppContext) -> RouteTable:
    from endpoints_hello.flows import build_routes  # noqa: PLC0415 - see the docstring

    return build_routes(ctx.ai, ctx.llm, ctx.images)


APP = App(
    name="endpoints-hello",
    description="Serve the sample Genkit flows over REST + SSE.",
    routes=routes,
    prompt_dir=PROMPTS_DIR,
    grpc_service=GRPC_SERVICE,
)


def create_asgi_from_env() -> ASGIApp:
    """ASGI factory for process managers (gunicorn): settings from the environment."""
    return APP.asgi_from_env()
