# SPDX-License-Identifier: Apache-2.0
"""The hand-written gRPC alternative: a ``grpc.aio`` servicer calling the naive Genkit flow.

The gRPC counterpart of ``naive_app.py``: the generated ``GenkitService`` servicer with
``Health`` and ``TellJoke``, the latter converting the protobuf request to the flow's
input, awaiting the very flow ``naive_app`` defines (offline model) and converting back.
No interceptors, authentication, request ids, limits or logging; a body the flow's input
model rejects ends the call with INVALID_ARGUMENT, as anyone would write it. Started by
``_grpcrunner`` with the same options as ours and the bare gRPC baseline, so ours/naive
on ``TellJoke`` is what our gRPC stack costs (or saves) against this code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from pydantic import ValidationError

from _grpcrunner import main as serve_main
from endpoints_hello.generated import genkit_sample_pb2, genkit_sample_pb2_grpc
from naive_app import JokeRequest, build_joke_flow


class NaiveServicer(genkit_sample_pb2_grpc.GenkitServiceServicer):
    """``Health`` and ``TellJoke``; the other RPCs stay UNIMPLEMENTED."""

    def __init__(self) -> None:
        self._health = genkit_sample_pb2.HealthResponse(status="ok")
        self._tell_joke = build_joke_flow()

    async def Health(  # noqa: N802 - the RPC's name, as the generated servicer spells it
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> Any:
        return self._health

    async def TellJoke(  # noqa: N802 - as above
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> Any:
        # proto3 strings are never absent: empty means "not given", so the defaults apply.
        fields = {"name": request.name, "username": request.username}
        try:
            data = JokeRequest(**{k: v for k, v in fields.items() if v})
        except ValidationError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        out = await self._tell_joke(data)
        return genkit_sample_pb2.JokeResponse(joke=out.joke, username=out.username or "")


def main(argv: Sequence[str] | None = None) -> None:
    serve_main(NaiveServicer, "Serve the naive grpc.aio + Genkit baseline.", argv)


if __name__ == "__main__":
    main()
