"""A gunicorn worker with the kit's uvicorn settings, for gunicorn as process manager.

The built-in runners already run N workers; this is for deployments that standardise on
gunicorn. The worker keeps what the uvicorn runner guarantees: no ``Server`` header
(gunicorn's settings cannot express ``server_header=False``, hence a subclass), a bounded
drain of ``shutdown_grace`` seconds, the lifespan on, no uvicorn access log (the app has
its own), proxy headers decided by the app's ``TRUSTED_PROXIES``, and the hardened HTTP
protocol with the request-head limits. Needs ``gunicorn`` and ``uvicorn-worker``.
"""

from __future__ import annotations

import math
from typing import Any

from genkit_endpoints.serving.config import ServerConfig

__all__ = ["gunicorn_worker_class"]


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
