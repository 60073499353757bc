# SPDX-License-Identifier: Apache-2.0
"""Baseline for the gRPC comparison: ``Health`` alone on a plain ``grpc.aio`` server.

The generated ``GenkitService`` stubs with a servicer that implements only ``Health``
(every other RPC keeps the generated UNIMPLEMENTED body), started by ``_grpcrunner`` with
the same server options as ours, so ours/bare measures what our gRPC stack adds to a
call. A benchmark fixture, not product code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from _grpcrunner import main as serve_main
from endpoints_hello.generated import genkit_sample_pb2, genkit_sample_pb2_grpc


class HealthOnly(genkit_sample_pb2_grpc.GenkitServiceServicer):
    """``Health`` answers ``ok``; the rest stays UNIMPLEMENTED."""

    def __init__(self) -> None:
        self._reply = genkit_sample_pb2.HealthResponse(status="ok")

    async def Health(  # noqa: N802 - the RPC's name, as the generated servicer spells it
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> Any:
        return self._reply


def main(argv: Sequence[str] | None = None) -> None:
    serve_main(HealthOnly, "Serve the bare grpc.aio Health baseline.", argv)


if __name__ == "__main__":
    main()
