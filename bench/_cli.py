# SPDX-License-Identifier: Apache-2.0
"""The harness's command line: flags, their defaults and their checks (see bench/README.md)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from _apps import SERVERS

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def _servers(value: str) -> list[str]:
    if value.strip().lower() == "none":
        return []
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in SERVERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"choose from {', '.join(SERVERS)} (comma-separated), or none"
        )
    return list(dict.fromkeys(names))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark our app against the bare and naive baselines (bench/README.md)."
    )
    p.add_argument("--duration", type=int, default=8, help="seconds per measurement (8)")
    p.add_argument("--connections", type=int, default=50, help="keep-alive connections (50)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    p.add_argument("--warmup", type=int, default=2, help="seconds of load before each (2)")
    p.add_argument("--rounds", type=int, default=1, help="repeat, rotating the app order (1)")
    p.add_argument(
        "--cold-starts", type=int, default=3, help="starts per app and server, median (3; 0: skip)"
    )
    p.add_argument(
        "--servers",
        type=_servers,
        default=list(SERVERS),
        help="REST suites and cold starts to run: comma-separated from "
        f"{','.join(SERVERS)} (all), or none",
    )
    p.add_argument(
        "--grpc-bench",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the gRPC comparison (on; --no-grpc-bench skips it)",
    )
    p.add_argument(
        "--grpc-server",
        choices=SERVERS,
        default="uvicorn",
        help="server our app runs on in the gRPC comparison (uvicorn)",
    )
    p.add_argument(
        "--grpc-concurrency", type=int, default=64, help="gRPC calls kept in flight (64)"
    )
    p.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="REST load: auto: wrk, installed with apt-get if missing, else the Python fallback",
    )
    p.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    args = p.parse_args(argv)
    for name in ("duration", "connections", "threads", "rounds", "grpc_concurrency"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0 or args.cold_starts < 0:
        p.error("--warmup and --cold-starts must not be negative")
    if not args.servers and not args.grpc_bench:
        p.error("nothing to run: --servers none and --no-grpc-bench")
    return args
