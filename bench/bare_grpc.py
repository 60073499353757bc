"""Baseline for the gRPC comparison: ``Health`` alone on a plain ``grpc.aio`` server.

The generated ``GenkitService`` stubs with a servicer that implements only ``Health``
(every other RPC keeps the generated UNIMPLEMENTED body), no interceptors, no standard
health service, no reflection. The server options come from the same ``GrpcConfig``
defaults our app uses (message size, keep-alive, ``SO_REUSEPORT``), and it runs on the
same event loop our servers choose (uvloop when installed), so ours/bare measures what our
gRPC stack adds to a call, not transport tuning. A benchmark fixture, not product code.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence
from typing import Any

import grpc

from endpoints_hello.generated import genkit_sample_pb2, genkit_sample_pb2_grpc
from genkit_endpoints import GrpcConfig

GRACE = 5.0  # seconds for in-flight calls at SIGTERM; the harness stops us when idle


class HealthOnly(genkit_sample_pb2_grpc.GenkitServiceServicer):
    """``Health`` answers ``ok``; the rest stays UNIMPLEMENTED."""

    def __init__(self) -> None:
        self._reply = genkit_sample_pb2.HealthResponse(status="ok")

    async def Health(  # noqa: N802 - the RPC's name, as the generated servicer spells it
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> Any:
        return self._reply


async def serve(host: str, port: int) -> None:
    cfg = GrpcConfig(host=host, port=port)
    server = grpc.aio.server(options=cfg.channel_options())
    # protoc's grpc output is untyped.
    genkit_sample_pb2_grpc.add_GenkitServiceServicer_to_server(HealthOnly(), server)  # type: ignore[no-untyped-call]
    if not server.add_insecure_port(f"{host}:{port}"):
        raise SystemExit(f"bare_grpc: cannot bind {host}:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(GRACE)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the bare grpc.aio Health baseline.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="auto: uvloop when installed, as uvicorn, granian and our hypercorn runner do",
    )
    args = parser.parse_args(argv)
    coro = serve(args.host, args.port)
    if args.loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if args.loop == "uvloop":
                raise
        else:
            uvloop.run(coro)
            return
    asyncio.run(coro)


if __name__ == "__main__":
    main()
