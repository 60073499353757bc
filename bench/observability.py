# SPDX-License-Identifier: Apache-2.0
"""Observability benchmark: what metrics, the audit log and tracing cost, and a scrape's time.

Two parts (``--parts``), on uvicorn with our app pinned to one core and the load on the
other, like ``bench/resilience.py``:

* ``overhead``: ``GET /health`` and ``POST /tell-joke`` on the same production stack
  (API keys, CORS, trusted hosts and proxies, rate limits, access log) four ways — with
  metrics, audit log and tracing all off; metrics only (the default); metrics and the
  audit log (to a file); and all three, tracing every request (``always_on``) to a local
  OTLP sink. Throughput, p99 and server CPU per request, each against "all off"; targets
  for "all on": at most 10 % less throughput and 15 % more p99 (informational). Each row
  runs ``--rounds`` times, the rows in turn, and keeps its best run.
* ``scrape``: ``GET /metrics`` with ``--workers 4`` after traffic on every worker: the
  time one scrape takes to merge four workers' files (median and worst of a series).

A benchmark, not a test: it measures and prints; exit 1 only when something broke.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from _apps import JOKE_BODY
from _load import Target, choose
from _proc import BenchError, Children, busy_cpus, http_request, run_harness
from resilience import Run

PARTS = ("overhead", "scrape")
RESULTS = Path(__file__).resolve().parent / "results" / "observability.json"
TARGETS = (
    Target("GET /health", "GET", "/health"),
    Target("POST /tell-joke", "POST", "/tell-joke", JOKE_BODY),
)
MAX_RPS_LOSS = 0.10
MAX_P99_GAIN = 0.15


class _Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that accepts every export and keeps only a count."""

    received: ClassVar[list[int]] = [0, 0]  # requests, bytes

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        _Sink.received[0] += 1
        _Sink.received[1] += length
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@contextlib.contextmanager
def otlp_sink(cpu: int | None) -> Iterator[str]:
    """The sink, serving on ``cpu`` (the load generator's core) to leave the server's alone."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)

    def serve() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})  # this thread (and the ones it starts) only
        server.serve_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def configs(workdir: Path, sink: str) -> list[tuple[str, dict[str, str]]]:
    audit = str(workdir / "audit.log")
    tracing = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink, "OTEL_TRACES_SAMPLER": "always_on"}
    return [
        ("all off", {"METRICS_ENABLED": "false", "AUDIT_LOG": "off"}),
        ("metrics", {"METRICS_ENABLED": "true", "AUDIT_LOG": "off"}),
        ("metrics + audit", {"METRICS_ENABLED": "true", "AUDIT_LOG": audit}),
        ("metrics + audit + tracing", {"METRICS_ENABLED": "true", "AUDIT_LOG": audit, **tracing}),
        # The same with one trace in ten recorded: what a production sampling rate costs.
        (
            "... tracing 10 % sampled",
            {
                "METRICS_ENABLED": "true",
                "AUDIT_LOG": audit,
                **tracing,
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0.1",
            },
        ),
    ]


def part_overhead(run: Run, rounds: int) -> str:
    # Every row is measured ``rounds`` times, the rows taking turns, and the best run of
    # each is kept: rows apart by a few per cent are otherwise lost in the drift of a
    # shared machine between one server start and the next.
    results: dict[str, dict[str, Any]] = {}
    with otlp_sink(run.load_cpu) as sink:
        for turn in range(1, rounds + 1):
            for label, settings in configs(run.workdir, sink):
                with run.ours(settings, "".join(c for c in label if c.isalnum())) as app:
                    for target in TARGETS:
                        print(f"observability: round {turn}/{rounds}: {label}: {target.label} …",
                              flush=True)  # fmt: skip
                        result, _ = run.load(app.port, app.pid, target, label, redis=False)
                        rows = results.setdefault(target.label, {})
                        if label not in rows or result.rps > rows[label].rps:
                            rows[label] = result
        spans = _Sink.received[:]
    lines = ["== observability overhead, ours on uvicorn (production settings) =="]
    for target in TARGETS:
        rows = results[target.label]
        base = rows["all off"]
        lines.append(
            f"\n{target.label:26} {'req/s':>8} {'vs off':>7} {'p99 ms':>8} {'vs off':>7} "
            f"{'server µs/req':>14}"
        )
        for label, r in rows.items():
            rps_ratio = r.rps / base.rps if base.rps else 0.0
            p99_ratio = r.p99_ms / base.p99_ms if base.p99_ms else 0.0
            lines.append(
                f"{label:26} {r.rps:8.0f} {rps_ratio:7.2f} {r.p99_ms:8.2f} {p99_ratio:7.2f} "
                f"{r.cpu_us_per_request or 0:14.0f}"
            )
        everything = rows["metrics + audit + tracing"]
        loss = 1 - everything.rps / base.rps if base.rps else 0.0
        gain = everything.p99_ms / base.p99_ms - 1 if base.p99_ms else 0.0
        verdict = "PASS" if loss <= MAX_RPS_LOSS and gain <= MAX_P99_GAIN else "MISS"
        lines.append(
            f"all on vs all off: throughput {-loss:+.0%} (target >= -{MAX_RPS_LOSS:.0%}), "
            f"p99 {gain:+.0%} (target <= +{MAX_P99_GAIN:.0%}): {verdict}"
        )
        run.out.setdefault("overhead", {})[target.label] = {
            label: r.as_dict() for label, r in rows.items()
        }
    lines.append(f"\nOTLP sink received {spans[0]} exports, {spans[1] / 1e6:.1f} MB")
    return "\n".join(lines)


def part_scrape(run: Run, scrapes: int) -> str:
    workers = 4
    with run.ours({"WORKERS": str(workers)}, "workers") as app:
        # Fresh connections spread over the workers (the kernel balances SO_REUSEPORT).
        for _ in range(400):
            status, _, _ = http_request(app.port, "GET", "/health")
            if status != 200:
                raise BenchError(f"/health gave {status}")
        times: list[float] = []
        size = 0
        for _ in range(scrapes):
            began = time.perf_counter()
            status, _, body = http_request(app.port, "GET", "/metrics")
            times.append((time.perf_counter() - began) * 1000)
            if status != 200:
                raise BenchError(f"/metrics gave {status}")
            size = len(body)
    run.out["scrape"] = {"workers": workers, "ms": times, "bytes": size}
    return (
        f"== GET /metrics with {workers} workers, {scrapes} scrapes ==\n"
        f"median {statistics.median(times):.1f} ms, worst {max(times):.1f} ms, "
        f"{size / 1024:.1f} KiB per scrape"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--parts", default=",".join(PARTS), help=f"from {','.join(PARTS)}")
    p.add_argument("--duration", type=int, default=5, help="seconds per wrk measurement (5)")
    p.add_argument("--warmup", type=int, default=1, help="seconds of wrk warm-up (1)")
    p.add_argument("--connections", type=int, default=50, help="wrk connections (50)")
    p.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    p.add_argument("--rounds", type=int, default=2, help="runs per row, best kept (2)")
    p.add_argument("--scrapes", type=int, default=30, help="scrapes timed (30)")
    p.add_argument("--output", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    args.parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    if not args.parts or set(args.parts) - set(PARTS):
        p.error(f"--parts takes a comma-separated subset of {','.join(PARTS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_harness("observability", lambda workdir, children: _run(args, workdir, children))


def _run(args: argparse.Namespace, workdir: Path, children: Children) -> int:
    run = Run(args, workdir, children)
    run.gen, how = choose(args.loadgen, 1, workdir)
    run.notes.append(
        f"REST load: {how}, {args.connections} connections, "
        f"{args.warmup} s warm-up + {args.duration} s"
    )
    cpus = [c for c in (run.server_cpu, run.load_cpu) if c is not None]
    busy = busy_cpus(cpus)
    run.notes.insert(
        0, "busy before start: " + (", ".join(f"CPU {c} {s:.0%}" for c, s in busy.items()) or "-")
    )
    parts: dict[str, Callable[[], str]] = {
        "overhead": lambda: part_overhead(run, args.rounds),
        "scrape": lambda: part_scrape(run, args.scrapes),
    }
    tables = [parts[name]() for name in PARTS if name in args.parts]
    print("\n" + "\n\n".join(tables))
    print("\nnotes:\n" + "\n".join(f"* {n}" for n in run.notes))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"notes": run.notes, **run.out}, indent=2, default=str))
    print(f"\nobservability: results written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
