# SPDX-License-Identifier: Apache-2.0
"""An app of its own on the kit's public API: three flows, a Dotprompt file, a gRPC service.

    python -m tests.example_app.app --port 8080 --grpc-port 50052

It exists to prove that an app outside the sample needs nothing but ``genkit_endpoints``'
public names: a cached flow driven by a prompt file (``/summarize``), a streaming flow
(``/count/stream``) and a flow that is never cached (``/shout``), on REST + SSE and on
the gRPC service of ``protos/example.proto``. Without provider keys the offline model
answers.
"""

from __future__ import annotations

from pathlib import Path

from genkit import ActionRunContext
from pydantic import BaseModel, Field

from genkit_endpoints import (
    App,
    AppContext,
    FlowRoute,
    current_principal,
    serve,
)

PROMPTS = Path(__file__).resolve().parent / "prompts"


class SummarizeInput(BaseModel):
    text: str = Field(default="A short text.", min_length=1, max_length=5_000)
    max_words: int = Field(default=30, ge=5, le=200)


class Summary(BaseModel):
    summary: str
    word_count: int = Field(ge=0)


class CountInput(BaseModel):
    to: int = Field(default=3, ge=1, le=20, description="Count from 1 up to this.")


class ShoutInput(BaseModel):
    text: str = Field(default="hello", min_length=1, max_length=200)


class Shout(BaseModel):
    text: str
    caller: str = Field(description="The API key's name; empty without keys.")


def summarize_and_count(ctx: AppContext) -> list[FlowRoute]:
    """The model-backed flows: a cached Dotprompt summary and a stream (also served by
    ``tests.support.failing_app``, which only swaps ``/shout``)."""
    # The prompt file names its output schema; Genkit resolves it by this name.
    ctx.ai.define_schema("Summary", Summary)

    @ctx.ai.flow(description="Summarize a text with the summarize Dotprompt.")
    async def summarize(data: SummarizeInput) -> Summary:
        return await ctx.llm.prompt("summarize", data.model_dump(), Summary)

    @ctx.ai.flow(description="Count from 1, one chunk per number.", chunk_type=str)
    async def count(data: CountInput, run: ActionRunContext) -> str:
        numbers = [str(n) for n in range(1, data.to + 1)]
        for number in numbers:
            run.send_chunk(number)
        return " ".join(numbers)

    # A list: the kit builds the table and computes the cached flow's version from its
    # source, the prompt file named here, the model and the model-call settings.
    return [
        FlowRoute(
            summarize,
            "/summarize",
            SummarizeInput,
            Summary,
            cacheable=True,
            grpc_method="Summarize",
            prompts=("summarize",),
        ),
        FlowRoute(count, "/count/stream", CountInput, stream_key="count", grpc_method="Count"),
    ]


def routes(ctx: AppContext) -> list[FlowRoute]:
    @ctx.ai.flow(description="The text in capitals, with the caller's name.")
    async def shout(data: ShoutInput) -> Shout:
        # Deliberately no model call and no cache: it answers who asked, which differs
        # per caller, so sharing answers between callers would be wrong.
        principal = current_principal()
        return Shout(text=data.text.upper(), caller=principal.name if principal else "")

    return [
        *summarize_and_count(ctx),
        FlowRoute(shout, "/shout", ShoutInput, Shout, grpc_method="Shout"),
    ]


app = App(
    name="example-app",
    description="An example app: summarize, count and shout over REST + SSE and gRPC.",
    routes=routes,
    prompt_dir=PROMPTS,
    grpc_service="tests.example_app.generated.example_pb2:ExampleService",
)

if __name__ == "__main__":
    serve(app)
