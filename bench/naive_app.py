# SPDX-License-Identifier: Apache-2.0
"""The hand-written alternative to the kit: plain FastAPI calling the same Genkit flow.

What a user writes without ``genkit_endpoints``, following Genkit's documentation: a
``Genkit`` instance, a flow defined with ``@ai.flow()`` that awaits ``ai.generate`` and a
FastAPI route that awaits the flow. The model is the kit's offline model (the only piece
of the kit used here, so that both sides run the very same model), and there are no
policies at all: no authentication, rate limits, middleware, timeouts or logging. This is
the baseline that says whether the kit is worth using: ours runs the same flow, so
ours/naive is what the kit's whole production stack costs (or saves) against the code it
replaces. The docs routes are switched off, as ours switches them off outside debug, so
routing does not make the baseline look slower than it needs to be.

``build_joke_flow`` is shared with ``naive_grpc.py``; the app is served by the runners in
``_runners`` with exactly the options of the bare baseline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from fastapi import FastAPI
from genkit import Genkit
from pydantic import BaseModel, Field

from _runners import main as serve_main
from genkit_endpoints import ProviderConfig, choose_model

FACTORY = "naive_app:create_app"  # granian workers import the app (bench/ is on sys.path)


class JokeRequest(BaseModel):
    name: str = Field("Mittens", max_length=200)
    username: str | None = None


class JokeReply(BaseModel):
    joke: str
    username: str | None


JokeFlow = Callable[[JokeRequest], Awaitable[JokeReply]]


def build_joke_flow() -> JokeFlow:
    """A Genkit instance on the offline model and the joke flow defined on it.

    Built inside the serving process (the factory or the gRPC server), never at import:
    granian's supervisor imports nothing of the app, and neither should it hold a Genkit.
    """
    choice = choose_model(ProviderConfig())
    ai = Genkit(plugins=list(choice.plugins), model=choice.model)

    @ai.flow()
    async def tell_joke(data: JokeRequest) -> JokeReply:
        response = await ai.generate(
            prompt=f"Tell a short, family-friendly joke about {data.name}."
        )
        return JokeReply(joke=response.text, username=data.username)

    return tell_joke


def create_app() -> FastAPI:
    """The naive app; a factory because granian builds it in its worker process."""
    joke_flow = build_joke_flow()
    api = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @api.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @api.post("/tell-joke")
    async def joke(data: JokeRequest) -> JokeReply:
        return await joke_flow(data)

    return api


def main(argv: Sequence[str] | None = None) -> None:
    serve_main(FACTORY, "Serve the naive FastAPI + Genkit baseline.", argv)


if __name__ == "__main__":
    main()
