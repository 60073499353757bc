# SPDX-License-Identifier: Apache-2.0
"""Start-up shared by the baseline gRPC servers (``bare_grpc.py``, ``naive_grpc.py``).

A plain ``grpc.aio`` server with one ``GenkitService`` servicer: no interceptors, no
standard health service, no reflection. Its options are the same ``GrpcConfig`` defaults
our app uses (message size, keep-alive, ``SO_REUSEPORT``) and it runs on the event loop
our servers choose (uvloop when installed), so a ratio against ours measures what our
gRPC stack adds to a call, not transport tuning. Stops on SIGTERM or SIGINT after a short
grace: the harness only stops a baseline when it is idle.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from endpoints_hello.generated import genkit_sample_pb2_grpc
from genkit_endpoints import GrpcConfig

GRACE = 5.0  # seconds for in-flight calls at SIGTERM


async def serve(servicer: Any, host: str, port: int) -> None:
    cfg = GrpcConfig(host=host, port=port)
    server = grpc.aio.server(options=cfg.channel_options())
    # protoc's grpc output is untyped.
    genkit_sample_pb2_grpc.add_GenkitServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    if not server.add_insecure_port(f"{host}:{port}"):
        raise SystemExit(f"cannot bind {host}:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(GRACE)


def main(servicer: Callable[[], Any], description: str, argv: Sequence[str] | None = None) -> None:
    """Parse ``--host``, ``--port``, ``--loop``; build the servicer on the serving loop."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="auto: uvloop when installed, as uvicorn, granian and our hypercorn runner do",
    )
    args = parser.parse_args(argv)

    async def run() -> None:
        await serve(servicer(), args.host, args.port)

    if args.loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if args.loop == "uvloop":
                raise
        else:
            uvloop.run(run())
            return
    asyncio.run(run())
