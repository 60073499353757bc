# SPDX-License-Identifier: Apache-2.0
"""Baseline for ``bench/run.py``: the same two routes in plain FastAPI, nothing on top.

No Genkit, no middleware, no logging: a ``/health`` that returns a dict and a
``/tell-joke`` that validates its body with Pydantic and formats a fixed string. It is
served by uvicorn, granian or hypercorn (``--server``) by the runners in ``_runners``,
which every baseline shares and which use the same option values as ours, so the ratio
ours/bare on one server measures what the kit and the flow add, not server tuning.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI
from pydantic import BaseModel, Field

from _runners import main as serve_main

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


def main(argv: Sequence[str] | None = None) -> None:
    serve_main(FACTORY, "Serve the bare FastAPI baseline.", argv)


if __name__ == "__main__":
    main()
