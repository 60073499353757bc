"""Side-by-side benchmark: our app against a bare FastAPI app, same server, same load.

One command (``make bench``) starts each app in turn pinned to one core, checks its
answers, drives ``GET /health`` and ``POST /tell-joke`` with wrk (or the Python fallback)
pinned to another core, measures cold start, prints the table with the targets and
writes ``bench/results/latest.json``. Exit 0 unless something broke; the targets are
informational. See bench/README.md.
"""

from __future__ import annotations

import argparse
import platform
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from _apps import APPS, TARGETS, Server, check_answers, serve, server_env
from _load import LoadGenerator, LoadResult, Target, choose
from _proc import BenchError, Children, bench_cpus, busy_cpus, cpu_seconds
from _report import Results

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "latest.json"
BUSY_WARNING = 0.10  # another process using this share of a bench core skews the numbers


class Bench:
    """Runs the apps one at a time (never side by side: they would share the core)."""

    def __init__(self, args: argparse.Namespace, workdir: Path, children: Children) -> None:
        self.args = args
        self.workdir = workdir
        self.children = children
        self.env = server_env()
        self.server_cpu, self.load_cpu = bench_cpus()

    def _serve(self, name: str) -> AbstractContextManager[Server]:
        return serve(
            name, children=self.children, cpu=self.server_cpu, env=self.env, workdir=self.workdir
        )

    def cold_starts(self, results: Results) -> None:
        for i in range(self.args.cold_starts):
            for name in _order(i):
                print(f"bench: cold start {i + 1}/{self.args.cold_starts}: {name} …", flush=True)
                with self._serve(name) as server:
                    results.add_cold_start(name, server.startup_s)

    def load(self, gen: LoadGenerator, results: Results) -> None:
        rounds = self.args.rounds
        for rnd in range(rounds):
            for name in _order(rnd):
                with self._serve(name) as server:
                    check_answers(server)
                    for target in TARGETS:
                        print(
                            f"bench: round {rnd + 1}/{rounds}: {name} {target.label} …", flush=True
                        )
                        if self.args.warmup:
                            self._drive(gen, server, target, self.args.warmup)
                        result = self._drive(gen, server, target, self.args.duration)
                        if result.non_2xx or not result.requests:
                            raise BenchError(
                                f"{name} {target.label}: {result.non_2xx} non-2xx responses "
                                f"of {result.requests} under load"
                            )
                        results.add_run(name, target.label, result)
                    check_answers(server)

    def _drive(
        self, gen: LoadGenerator, server: Server, target: Target, seconds: int
    ) -> LoadResult:
        cpu_before = cpu_seconds(server.pid)
        result = gen.run(
            self.children,
            server.port,
            target,
            connections=self.args.connections,
            duration=seconds,
            cpu=self.load_cpu,
        )
        return replace(result, server_cpu_s=cpu_seconds(server.pid) - cpu_before)


def _order(i: int) -> Sequence[str]:
    # Alternate which app goes first, so neither always gets the cooler (or warmer) machine.
    return APPS if i % 2 == 0 else APPS[::-1]


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "pydantic", "genkit")
    return {name: version(name) for name in names}


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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark our app against a bare FastAPI app.")
    p.add_argument("--duration", type=int, default=10, help="seconds per measurement (10)")
    p.add_argument("--connections", type=int, default=50, help="keep-alive connections (50)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    p.add_argument("--warmup", type=int, default=2, help="seconds of load before each (2)")
    p.add_argument("--rounds", type=int, default=1, help="repeat, alternating app order (1)")
    p.add_argument("--cold-starts", type=int, default=3, help="starts per app, median (3)")
    p.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="auto: wrk, installed with apt-get if missing, else the Python fallback",
    )
    p.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    args = p.parse_args(argv)
    for name in ("duration", "connections", "threads", "rounds", "cold_starts"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0:
        p.error("--warmup must not be negative")
    return args


def _interrupt(signum: int, _: FrameType | None) -> None:
    # SIGTERM/SIGHUP unwind like Ctrl-C, so the `finally` in main stops every child.
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    children = Children()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            return _run(args, Path(tmp), children)
    except KeyboardInterrupt:
        print("\nbench: interrupted; stopping servers", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    finally:
        children.stop_all()


def _run(args: argparse.Namespace, workdir: Path, children: Children) -> int:
    bench = Bench(args, workdir, children)
    gen, how = choose(args.loadgen, args.threads, workdir)
    cpus = [c for c in (bench.server_cpu, bench.load_cpu) if c is not None]
    pinning = (
        f"server on CPU {bench.server_cpu}, load on CPU {bench.load_cpu}"
        if cpus
        else "NOT pinned (fewer than 2 CPUs allowed): numbers are noisy"
    )
    threads = f"{args.threads} thread(s), " if gen.name == "wrk" else ""
    setup = (
        f"{threads}{args.connections} connections, {args.warmup} s warm-up + "
        f"{args.duration} s per endpoint, {args.rounds} round(s); {pinning}"
    )
    print(f"bench: load generator: {how}\nbench: {setup}", flush=True)
    busy = busy_cpus(cpus)
    results = Results(
        meta={
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "git_commit": _git_commit(),
            "python": platform.python_version(),
            "versions": _versions(),
            "load_generator": {"name": gen.name, "version": gen.version, "how": how},
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "cpus": {"server": bench.server_cpu, "load": bench.load_cpu},
            "busy_before_start": {f"cpu{c}": share for c, share in busy.items()},
        },
        endpoints=[t.label for t in TARGETS],
    )
    for cpu, share in busy.items():
        if share > BUSY_WARNING:
            results.warn(
                f"CPU {cpu} was {share:.0%} busy with other processes before the run: "
                "req/s and latencies are skewed; compare CPU µs per request instead"
            )
    bench.cold_starts(results)
    bench.load(gen, results)
    print(f"\nload generator: {how}\n{setup}\n")
    print(results.table())
    results.write_json(args.output)
    print(f"\nbench: results written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
