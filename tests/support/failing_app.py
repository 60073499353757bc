# SPDX-License-Identifier: Apache-2.0
"""An app on the public API whose flows fail on cue, for what the service reports.

    python -m tests.support.failing_app --port 8080

It serves the example app's gRPC service (``tests/example_app``: Summarize, Count,
Shout) and prompt, with a Shout that misbehaves by its text:

* ``boom …`` — a bug: a lookup that fails with ``KeyError`` naming the text (so the
  text, whatever secret it holds, is in the exception's message): 500 / ``INTERNAL``;
* ``slow`` — logs ``slow_shout_started`` and takes 30 s: with a short
  ``REQUEST_TIMEOUT`` a 504, and while it runs it holds a concurrency slot;
* anything else — the text in capitals with the caller's name.

Summarize calls the (offline) model through the prompt file and is cached; Count streams.
"""

from __future__ import annotations

import asyncio

import structlog

from genkit_endpoints import App, AppContext, FlowRoute, current_principal, serve
from tests.example_app.app import PROMPTS, Shout, ShoutInput, summarize_and_count

SLOW_SECONDS = 30.0
_log = structlog.get_logger("failing_app")
_HANDLERS = {"hello": "greeting"}  # the lookup the "boom" text fails


def routes(ctx: AppContext) -> list[FlowRoute]:
    @ctx.ai.flow()
    async def shout(data: ShoutInput) -> Shout:
        if data.text.startswith("boom"):
            handler = _HANDLERS[data.text]  # the bug: raises KeyError('boom …')
            return Shout(text=handler, caller="")
        if data.text == "slow":
            _log.info("slow_shout_started")
            await asyncio.sleep(SLOW_SECONDS)
        principal = current_principal()
        return Shout(text=data.text.upper(), caller=principal.name if principal else "")

    return [
        *summarize_and_count(ctx),
        FlowRoute(shout, "/shout", ShoutInput, Shout, grpc_method="Shout"),
    ]


app = App(
    name="failing-app",
    description="Flows that fail on cue: a bug, a slow answer.",
    routes=routes,
    prompt_dir=PROMPTS,
    grpc_service="tests.example_app.generated.example_pb2:ExampleService",
)

if __name__ == "__main__":
    serve(app)
