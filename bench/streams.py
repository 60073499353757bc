# SPDX-License-Identifier: Apache-2.0
"""Streams at scale: one server process holding thousands of concurrent SSE streams.

Our app on uvicorn, one process pinned to one core, with the production settings of
``bench/run.py`` (``_apps.SECURED_ENV``: API keys, CORS, trusted hosts and proxies, rate
limits at 100000000/minute with the sliding-window-counter strategy) and
``LOG_LEVEL=warning``. The offline model is slowed to one chunk per second
(``OFFLINE_FIRST_CHUNK_DELAY=1000``, ``OFFLINE_CHUNK_DELAY=1000``), so every stream stays
open for as many seconds as the story has chunks, and ``MAX_CONCURRENT_REQUESTS`` is
raised above the largest level (its default of 1000 would answer 503 to the rest: that
limit is what this bench deliberately lifts, to see what one process can hold).

For each level N of ``--streams`` a fresh server is started and one asyncio client
(``bench/_streamload.py``, pinned to the other core) opens N raw HTTP/1.1 connections at
most ``--rate`` per second, each a ``POST /tell-story/stream`` read to its last frame,
while ``GET /health`` is timed every 100 ms on a connection of its own: that route does
no work, so its latency is the serving event loop's lag. Measured per level: streams
completed / started / failed (and why), chunk frames per stream (the offline model is
deterministic, so every stream must get the same number), p50/p99 time to first frame,
the server's RSS idle and at its peak (sampled every 0.5 s) and per open stream, the
loop lag, and the server's CPU seconds.

Targets at 5 000 streams (informational): every frame delivered, loop lag p99 <= 50 ms,
<= 30 KiB of RSS per open stream. A benchmark, not a test: exit 1 only when something
broke. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _apps import BENCH_API_KEY, server_env
from _load import run_child
from _proc import BenchError, Children, bench_cpus, busy_cpus, cpu_seconds, rss_kib, run_harness
from _resilience_env import serve_ours

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "streams.json"
TARGET_STREAMS = 5000
MAX_LAG_P99_MS = 50.0
MAX_KIB_PER_STREAM = 30.0
SAMPLE_S = 0.5


class RssSampler:
    """The server tree's RSS every ``SAMPLE_S`` seconds in a thread; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            self._stop.wait(SAMPLE_S)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def level(args: argparse.Namespace, n: int, workdir: Path, children: Children) -> dict[str, Any]:
    server_cpu, load_cpu = bench_cpus()
    settings = {
        "OFFLINE_FIRST_CHUNK_DELAY": "1000",
        "OFFLINE_CHUNK_DELAY": "1000",
        # Above N, or the overload guard answers 503 to every stream past its limit.
        "MAX_CONCURRENT_REQUESTS": str(max(n * 2, 1000)),
    }
    with serve_ours(
        settings,
        base_env=server_env(),
        children=children,
        cpu=server_cpu,
        workdir=workdir,
        label=f"streams{n}",
    ) as app:
        time.sleep(0.5)  # let start-up allocations settle before the idle reading
        idle = rss_kib(app.pid)
        cpu0 = cpu_seconds(app.pid)
        argv = [
            sys.executable, str(BENCH_DIR / "_streamload.py"),
            f"--port={app.port}", f"--streams={n}", f"--rate={args.rate}",
            f"--deadline={args.deadline}", f"--api-key={BENCH_API_KEY}",
        ]  # fmt: skip
        with RssSampler(app.pid) as sampler:
            out = run_child(children, argv, load_cpu, timeout=args.deadline + 20)
        cpu = cpu_seconds(app.pid) - cpu0
        peak = max(sampler.peak, idle)
    try:
        doc: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise BenchError(f"unreadable output from the stream client: {out!r}") from exc
    # Every stream of one topic gets the same chunks from the deterministic offline model:
    # the most common count is the expected one, for every stream requested.
    counts = {int(k): v for k, v in doc["chunk_frames"].items()}
    per_stream = max(counts, key=lambda k: counts[k]) if counts else 0
    doc.update(
        streams=n,
        frames_expected=per_stream * n,
        frames_delivered=sum(k * v for k, v in counts.items()),
        rss_idle_kib=idle,
        rss_peak_kib=peak,
        # Per stream open at the peak (the client's count), not per N: with a ramp longer
        # than a stream's life the first streams are gone before the last ones open.
        kib_per_stream=(peak - idle) / max(doc["peak_open"], 1),
        server_cpu_s=cpu,
    )
    return doc


def verdicts(doc: dict[str, Any]) -> list[str]:
    counts = doc["chunk_frames"]
    all_frames = (
        doc["completed"] == doc["streams"]
        and len(counts) == 1
        and doc["frames_delivered"] == doc["frames_expected"]
    )
    lag = doc["health_ms"]["p99"]
    lag_ok = lag is not None and lag <= MAX_LAG_P99_MS
    mem_ok = doc["kib_per_stream"] <= MAX_KIB_PER_STREAM
    return [
        f"every frame delivered: {'PASS' if all_frames else 'MISS'}",
        f"loop lag p99 {_ms(lag)} ms (target <= {MAX_LAG_P99_MS:.0f}): "
        f"{'PASS' if lag_ok else 'MISS'}",
        f"RSS per stream {doc['kib_per_stream']:.1f} KiB (target <= {MAX_KIB_PER_STREAM:.0f}): "
        f"{'PASS' if mem_ok else 'MISS'}",
    ]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(docs: list[dict[str, Any]]) -> str:
    lines = [
        "== SSE streams at scale: ours on uvicorn, one process (production settings), "
        "POST /tell-story/stream at 1 chunk/s ==",
        f"{'streams':>8} {'open':>6} {'done':>6} {'start':>6} {'fail':>5} {'frames':>15} "
        f"{'ttff p50':>9} {'p99':>7} {'lag p50':>8} {'p99':>7} {'max':>7} "
        f"{'RSS idle':>9} {'peak':>7} {'KiB/str':>8} {'CPU s':>6} {'client':>6}",
    ]
    for d in docs:
        frames = f"{d['frames_delivered']}/{d['frames_expected']}"
        lines.append(
            f"{d['streams']:>8} {d['peak_open']:>6} {d['completed']:>6} {d['started']:>6} "
            f"{d['failed']:>5} {frames:>15} "
            f"{_ms(d['ttff_ms']['p50']):>9} {_ms(d['ttff_ms']['p99']):>7} "
            f"{_ms(d['health_ms']['p50']):>8} {_ms(d['health_ms']['p99']):>7} "
            f"{_ms(d['health_ms']['max']):>7} {d['rss_idle_kib'] / 1024:>7.1f}Mi "
            f"{d['rss_peak_kib'] / 1024:>5.1f}Mi {d['kib_per_stream']:>8.1f} "
            f"{d['server_cpu_s']:>6.1f} {d['client_cpu_s']:>6.1f}"
        )
    lines.append(
        "(open: most streams open at once; frames: chunk frames delivered/expected; "
        "ttff and lag in ms; KiB/str: (peak - idle) RSS per open stream; "
        "CPU s: the server's, client: the load client's)"
    )
    for d in docs:
        extra = []
        if d["failures"]:
            extra.append("failures " + ", ".join(f"{k}: {v}" for k, v in d["failures"].items()))
        if d["unfinished"]:
            extra.append(f"{d['unfinished']} unfinished at the deadline")
        if len(d["chunk_frames"]) > 1:  # {chunk frames: streams that got that many}
            extra.append(f"frame count mismatch: {d['chunk_frames']}")
        if d["peak_open"] < d["streams"] and d["completed"]:
            # A stream lives about as long as the story has chunks, in seconds: a ramp
            # longer than that never has all N open at once.
            extra.append(
                f"only {d['peak_open']} open at once (ramp {d['ramp_s']:.1f} s; "
                "a higher --rate holds them all)"
            )
        if d["health_ms"]["failed"]:
            extra.append(f"{d['health_ms']['failed']} health probes failed")
        if extra:
            lines.append(f"{d['streams']} streams: " + "; ".join(extra))
    target = next((d for d in docs if d["streams"] == TARGET_STREAMS), None)
    if target is None:
        lines.append(f"\ntargets apply at {TARGET_STREAMS} streams: not run")
    else:
        lines.append(f"\ntargets at {TARGET_STREAMS} streams:")
        lines += [f"  {v}" for v in verdicts(target)]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument(
        "--streams", default="500,2000,5000", help="concurrent streams per level (500,2000,5000)"
    )
    p.add_argument("--rate", type=float, default=500.0, help="new connections per second (500)")
    p.add_argument(
        "--deadline", type=float, default=40.0, help="seconds a level may take, at most (40)"
    )
    p.add_argument(
        "--output", type=Path, default=RESULTS, help="results JSON (bench/results/streams.json)"
    )
    args = p.parse_args(argv)
    try:
        args.streams = [int(x) for x in args.streams.split(",") if x.strip()]
    except ValueError:
        p.error("--streams takes comma-separated integers")
    if not args.streams or min(args.streams) < 1:
        p.error("--streams takes comma-separated positive integers")
    if args.rate <= 0 or args.deadline <= 0:
        p.error("--rate and --deadline must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # One descriptor per stream on each side: children (server and client) inherit it.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return run_harness("streams", lambda workdir, children: _run(args, workdir, children))


def _run(args: argparse.Namespace, workdir: Path, children: Children) -> int:
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if max(args.streams) + 256 > nofile:
        raise BenchError(
            f"RLIMIT_NOFILE is {nofile}: too low for {max(args.streams)} streams "
            "(raise the hard limit, e.g. `ulimit -Hn`)"
        )
    notes = [f"RLIMIT_NOFILE {nofile} for the server and the client"]
    busy = busy_cpus([c for c in bench_cpus() if c is not None])
    notes.insert(
        0, "busy before start: " + (", ".join(f"CPU {c} {s:.0%}" for c, s in busy.items()) or "-")
    )
    notes.append(f"ramp: at most {args.rate:.0f} new connections/s; each level <= "
                 f"{args.deadline:.0f} s")  # fmt: skip
    docs = []
    for n in args.streams:
        print(f"streams: {n} concurrent streams …", flush=True)
        docs.append(level(args, n, workdir, children))
    print("\n" + table(docs))
    print("\nnotes:\n" + "\n".join(f"* {n}" for n in notes))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"notes": notes, "levels": docs}, indent=2))
    print(f"\nstreams: results written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
