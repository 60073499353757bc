# SPDX-License-Identifier: Apache-2.0
"""Side-by-side benchmark: our app against two baselines, per server and over gRPC.

One command (``make bench``) runs, for each server in ``--servers`` (uvicorn, granian,
hypercorn), three apps on that server in turn, pinned to one core: bare FastAPI (no
Genkit), naive FastAPI (the same Genkit flow as ours, written by hand without the kit)
and ours. It checks their answers, drives ``GET /health`` and ``POST /tell-joke`` with
wrk (or the Python fallback) pinned to another core, records CPU per request and the
server's memory, and measures cold start. Then, over gRPC, our ``Health`` against a bare
``grpc.aio`` server and our ``TellJoke`` against a naive ``grpc.aio`` servicer around
the same flow, driven by a Python gRPC client. It prints one table per server, the gRPC
table and a summary of ratios against the targets, and writes
``bench/results/latest.json``. Exit 0 unless something broke; the targets are
informational. See bench/README.md.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from _apps import APPS, TARGETS, Server, check_answers, serve, server_env
from _cli import parse_args
from _grpc import MEASURED, GrpcClient, serve_grpc
from _load import LoadGenerator, LoadResult, Target, choose
from _proc import (
    BenchError,
    Children,
    bench_cpus,
    busy_cpus,
    busy_seconds,
    cpu_seconds,
    cpu_ticks,
    rss_kib,
    run_harness,
    thread_count,
)
from _report import GRPC, Results
from _tables import render

BENCH_DIR = Path(__file__).resolve().parent
BUSY_WARNING = 0.10  # another process using this share of a bench core skews the numbers


class Bench:
    """Runs the apps one at a time (never side by side: they would share the core)."""

    def __init__(self, args: argparse.Namespace, workdir: Path, children: Children) -> None:
        self.args = args
        self.workdir = workdir
        self.children = children
        self.env = server_env()
        self.server_cpu, self.load_cpu = bench_cpus()
        self.grpc = GrpcClient(children, self.load_cpu, self.env)

    def _serve(self, name: str, server: str) -> AbstractContextManager[Server]:
        return serve(
            name,
            server,
            children=self.children,
            cpu=self.server_cpu,
            env=self.env,
            workdir=self.workdir,
        )

    def cold_starts(self, results: Results) -> None:
        n = self.args.cold_starts
        for i in range(n):
            for k, server in enumerate(self.args.servers):
                for name in _order(i + k):
                    print(f"bench: cold start {i + 1}/{n}: {name} on {server} …", flush=True)
                    with self._serve(name, server) as running:
                        results.add_cold_start(server, name, running.startup_s)

    def rest(self, gen: LoadGenerator, results: Results) -> None:
        for rnd in range(self.args.rounds):
            for k, server in enumerate(self.args.servers):
                for name in _order(rnd + k):
                    self._rest_app(gen, results, server, name, rnd)

    def _rest_app(
        self, gen: LoadGenerator, results: Results, server: str, name: str, rnd: int
    ) -> None:
        with self._serve(name, server) as running:
            check_answers(running)
            results.add_processes(server, name, running.processes, thread_count(running.pid))
            for target in TARGETS:
                self._progress(rnd, f"{running.label} {target.label}")

                def drive(seconds: int, target: Target = target) -> LoadResult:
                    return gen.run(
                        self.children,
                        running.port,
                        target,
                        connections=self.args.connections,
                        duration=seconds,
                        cpu=self.load_cpu,
                    )

                result = self._measure(running, drive)
                if result.non_2xx or not result.requests:
                    raise BenchError(
                        f"{running.label} {target.label}: {result.non_2xx} non-2xx "
                        f"responses of {result.requests} under load"
                    )
                results.add_run(server, name, target.label, result)
            check_answers(running)

    def grpc_suite(self, results: Results) -> None:
        for rnd in range(self.args.rounds):
            for name in _order(rnd):
                with serve_grpc(
                    name,
                    self.args.grpc_server,
                    client=self.grpc,
                    children=self.children,
                    cpu=self.server_cpu,
                    env=self.env,
                    workdir=self.workdir,
                ) as running:
                    results.add_processes(GRPC, name, running.processes, thread_count(running.pid))
                    for endpoint in MEASURED[name]:
                        self._grpc_rpc(results, running, endpoint, rnd)

    def _grpc_rpc(self, results: Results, running: Server, endpoint: str, rnd: int) -> None:
        self.grpc.check(running, endpoint)
        self._progress(rnd, f"{running.label} {endpoint}")

        def drive(seconds: int) -> LoadResult:
            return self.grpc.load(
                running.port,
                endpoint,
                concurrency=self.args.grpc_concurrency,
                duration=seconds,
            )

        result = self._measure(running, drive)
        if not result.requests:
            raise BenchError(f"{running.label}: no {endpoint} call completed under load")
        results.add_run(GRPC, running.name, endpoint, result)
        self.grpc.check(running, endpoint)

    def _progress(self, rnd: int, what: str) -> None:
        print(f"bench: round {rnd + 1}/{self.args.rounds}: {what} …", flush=True)

    def _measure(self, server: Server, drive: Callable[[int], LoadResult]) -> LoadResult:
        """Warm up, then one measured run with the server's CPU and its core's contention,
        and the server's memory once the load is over (what serving that load left it at)."""
        if self.args.warmup:
            drive(self.args.warmup)
        ticks_before = cpu_ticks()
        cpu_before = cpu_seconds(server.pid)
        result = drive(self.args.duration)
        server_cpu = cpu_seconds(server.pid) - cpu_before
        others = None
        if self.server_cpu is not None:
            spent = busy_seconds(ticks_before, cpu_ticks(), self.server_cpu)
            if spent is not None and spent[1] > 0:
                others = max(0.0, spent[0] - server_cpu) / spent[1]
        return replace(
            result,
            server_cpu_s=server_cpu,
            others_on_server_core=others,
            server_rss_kib=rss_kib(server.pid),
        )


def _order(i: int) -> Sequence[str]:
    # Rotate which app goes first (and last), so none always gets the cooler (or warmer)
    # machine: round i, shifted by the server's place in the list, starts with app i.
    k = i % len(APPS)
    return (*APPS[k:], *APPS[:k])


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    names = (
        "fastapi",
        "starlette",
        "uvicorn",
        "uvloop",
        "httptools",
        "granian",
        "hypercorn",
        "grpcio",
        "protobuf",
        "pydantic",
        "genkit",
    )
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(BENCH_DIR), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_harness("bench", lambda workdir, children: _run(args, workdir, children))


def _run(args: argparse.Namespace, workdir: Path, children: Children) -> int:
    bench = Bench(args, workdir, children)
    gen, how = choose(args.loadgen, args.threads, workdir) if args.servers else (None, "")
    cpus = [c for c in (bench.server_cpu, bench.load_cpu) if c is not None]
    pinning = (
        f"server on CPU {bench.server_cpu}, load on CPU {bench.load_cpu}"
        if cpus
        else "NOT pinned (fewer than 2 CPUs allowed): numbers are noisy"
    )
    lines = [
        f"bench: {pinning}; {args.warmup} s warm-up + {args.duration} s per measurement, "
        f"{args.rounds} round(s)"
    ]
    if gen is not None:
        threads = f"{args.threads} thread(s), " if gen.name == "wrk" else ""
        lines.append(
            f"bench: REST on {', '.join(args.servers)}: {how}, {threads}"
            f"{args.connections} connections"
        )
    grpc_setup = (
        f"ours on {args.grpc_server} with gRPC enabled; load: Python grpc.aio client, "
        f"{args.grpc_concurrency} calls in flight on one channel"
    )
    if args.grpc_bench:
        lines.append(f"bench: gRPC: {grpc_setup}")
    setup = "\n".join(lines)
    print(setup, flush=True)
    busy = busy_cpus(cpus)
    results = Results(
        meta={
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "git_commit": _git_commit(),
            "python": platform.python_version(),
            "versions": _versions(),
            "load_generator": (
                {"name": gen.name, "version": gen.version, "how": how} if gen is not None else None
            ),
            "grpc_load_generator": "bench/_grpcload.py (grpc.aio)" if args.grpc_bench else None,
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "cpus": {"server": bench.server_cpu, "load": bench.load_cpu},
            "busy_before_start": {f"cpu{c}": share for c, share in busy.items()},
        },
    )
    for cpu, share in busy.items():
        if share > BUSY_WARNING:
            results.warn(
                f"CPU {cpu} was {share:.0%} busy with other processes before the run: "
                "req/s and latencies are skewed; compare CPU µs per request instead"
            )
    if args.servers:
        bench.cold_starts(results)
    if gen is not None:
        bench.rest(gen, results)
    if args.grpc_bench:
        bench.grpc_suite(results)
    print(f"\n{setup}\n")
    print(render(results, grpc_setup=grpc_setup))
    results.write_json(args.output)
    print(f"\nbench: results written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
