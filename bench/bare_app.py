"""Baseline for ``bench/run.py``: the same two routes in plain FastAPI, nothing on top.

No Genkit, no middleware, no logging: a ``/health`` that returns a dict and a
``/tell-joke`` that validates its body with Pydantic and formats a fixed string. It is
served by uvicorn with the same settings as our runner (``genkit_endpoints.servers``),
so the ratio ours/bare measures what the kit and the flow add, not server tuning. A
module-level ``app`` is fine here: this is a benchmark fixture, not product code.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, Field

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


class JokeIn(BaseModel):
    name: str = Field("Mittens", max_length=200)
    username: str | None = None


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/tell-joke")
async def tell_joke(data: JokeIn) -> dict[str, str | None]:
    joke = f"{data.name} asked for a book on patience. The librarian said it would take a while."
    return {"joke": joke, "username": data.username}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the bare FastAPI baseline.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args(argv)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        server_header=False,
        timeout_keep_alive=75,
        access_log=False,
        log_level="warning",
        # Also as in our runner: uvicorn's defaults would wrap the app in its
        # ProxyHeadersMiddleware, a layer ours does not have.
        lifespan="on",
        proxy_headers=False,
        timeout_graceful_shutdown=25,
    )


if __name__ == "__main__":
    main()
