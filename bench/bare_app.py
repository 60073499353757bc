"""Baseline for ``bench/run.py``: the same two routes in plain FastAPI, nothing on top.

No Genkit, no middleware, no logging: a ``/health`` that returns a dict and a
``/tell-joke`` that validates its body with Pydantic and formats a fixed string. It is
served by uvicorn, granian or hypercorn (``--server``) with the same option values as
our runners in ``genkit_endpoints.serving.runners`` (same event loop, HTTP settings, keep-alive,
no access log, lifespan on, one worker), so the ratio ours/bare on one server measures
what the kit and the flow add, not server tuning. Server-side wrappers that are part of
our runners (hypercorn's in-flight task tracking) are deliberately not copied: they
count as ours.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
from collections.abc import Sequence

from fastapi import FastAPI
from pydantic import BaseModel, Field

KEEP_ALIVE = 75  # seconds: ServerConfig.keep_alive
GRACE = 25  # seconds: ServerConfig.shutdown_grace
LOG_LEVEL = "warning"  # what the harness gives our app (LOG_LEVEL=warning)
FACTORY = "bare_app:create_app"  # granian workers import the app (bench/ is on sys.path)


class JokeIn(BaseModel):
    name: str = Field("Mittens", max_length=200)
    username: str | None = None


def create_app() -> FastAPI:
    """The bare app; a factory because granian builds it in its worker process."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/tell-joke")
    async def tell_joke(data: JokeIn) -> dict[str, str | None]:
        joke = (
            f"{data.name} asked for a book on patience. The librarian said it would take a while."
        )
        return {"joke": joke, "username": data.username}

    return app


def run_uvicorn(host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(
        create_app(),
        host=host,
        port=port,
        server_header=False,
        date_header=True,
        timeout_keep_alive=KEEP_ALIVE,
        access_log=False,
        log_level=LOG_LEVEL,
        # Also as in our runner: uvicorn's defaults would wrap the app in its
        # ProxyHeadersMiddleware, a layer ours does not have.
        lifespan="on",
        proxy_headers=False,
        timeout_graceful_shutdown=GRACE,
    )


def run_hypercorn(host: str, port: int) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.workers = 1
    config.keep_alive_timeout = KEEP_ALIVE
    config.include_server_header = False
    config.include_date_header = True
    config.graceful_timeout = GRACE
    config.shutdown_timeout = GRACE
    config.errorlog = logging.getLogger("hypercorn.error")
    config.accesslog = None
    config.loglevel = LOG_LEVEL.upper()
    app = create_app()
    try:  # our runner's loop: uvloop when installed
        import uvloop

        uvloop.run(serve(app, config))  # type: ignore[arg-type]
    except ImportError:
        asyncio.run(serve(app, config))  # type: ignore[arg-type]


def run_granian(host: str, port: int) -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    # As our runner: workers are fresh interpreters (spawn), not forks of this process.
    multiprocessing.set_start_method("spawn", force=True)
    Granian(
        FACTORY,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=1,
        http=HTTPModes.http1,  # as our runner: HTTP/1.1 only
        http1_settings=HTTP1Settings(header_read_timeout=KEEP_ALIVE * 1000),
        log_enabled=True,
        log_level=LogLevels(LOG_LEVEL),
        log_access=False,
        workers_kill_timeout=GRACE,
        respawn_failed_workers=False,
    ).serve()


RUNNERS = {"uvicorn": run_uvicorn, "granian": run_granian, "hypercorn": run_hypercorn}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the bare FastAPI baseline.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--server", choices=tuple(RUNNERS), default="uvicorn")
    args = parser.parse_args(argv)
    RUNNERS[args.server](args.host, args.port)


if __name__ == "__main__":
    main()
