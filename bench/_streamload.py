# SPDX-License-Identifier: Apache-2.0
"""The load client of ``bench/streams.py``: N concurrent SSE streams from one asyncio process.

Opens ``--streams`` raw HTTP/1.1 connections, at most ``--rate`` new ones per second,
each sending one ``POST`` of a stream endpoint and reading its SSE answer to the end,
while a separate connection sends ``GET /health`` every ``--probe-interval`` seconds and
times it. Prints one JSON line. No HTTP library: its own per-stream cost would cap how
many streams one client core can hold, and the raw bytes are all the bench needs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import resource
import sys
import time
from collections import Counter
from typing import Any

LOCALHOST = "127.0.0.1"


def raise_nofile() -> int:
    """Soft RLIMIT_NOFILE up to the hard one: one descriptor per stream, plus a few."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def dechunk(raw: bytes) -> bytes | None:
    """The body of a chunked transfer encoding, or None when it is cut short."""
    out, pos = bytearray(), 0
    while True:
        end = raw.find(b"\r\n", pos)
        if end < 0:
            return None
        size = int(raw[pos:end].split(b";", 1)[0] or b"0", 16)
        if size == 0:
            return bytes(out)
        start = end + 2
        out += raw[start : start + size]
        pos = start + size + 2


def frames(body: bytes) -> tuple[int, bool, bool]:
    """(chunk frames, a done frame seen, an error frame seen) of an SSE body."""
    chunks, done, error = 0, False, False
    for frame in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        lines = frame.split(b"\n")
        if any(line.startswith(b"event: error") for line in lines):
            error = True
            continue
        for line in lines:
            if not line.startswith(b"data:"):
                continue
            with contextlib.suppress(ValueError):
                doc = json.loads(line[5:])
                if isinstance(doc, dict) and "chunk" in doc:
                    chunks += 1
                elif isinstance(doc, dict) and doc.get("done"):
                    done = True
    return chunks, done, error


class Stats:
    def __init__(self) -> None:
        self.started = self.completed = self.failed = self.open = self.peak_open = 0
        self.statuses: Counter[str] = Counter()  # failures: HTTP status or exception name
        self.chunk_counts: Counter[int] = Counter()  # chunk frames per completed stream
        self.ttff_ms: list[float] = []
        self.health_ms: list[float] = []
        self.health_failed = 0
        self.all_open_at: float | None = None  # when the last stream was opened


async def one_stream(port: int, request: bytes, stats: Stats, deadline: float) -> None:
    stats.started += 1
    began = time.perf_counter()
    writer = None
    stats.open += 1
    stats.peak_open = max(stats.peak_open, stats.open)
    try:
        reader, writer = await asyncio.open_connection(LOCALHOST, port)
        writer.write(request)
        left = max(0.0, deadline - time.perf_counter())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), left)
        status = head.split(b" ", 2)[1].decode()
        raw = bytearray()
        first = None
        while True:
            # wait_for with a spent deadline raises TimeoutError at once: the run's bound.
            left = max(0.0, deadline - time.perf_counter())
            data = await asyncio.wait_for(reader.read(65536), left)
            if not data:
                break
            raw += data
            if first is None and b"data:" in raw:
                first = time.perf_counter()
        if status != "200":
            stats.failed += 1
            stats.statuses[status] += 1
            return
        chunked = b"transfer-encoding: chunked" in head.lower()
        body = dechunk(bytes(raw)) if chunked else bytes(raw)
        if body is None:
            stats.failed += 1
            stats.statuses["cut"] += 1
            return
        chunks, done, error = frames(body)
        if error or not done:
            stats.failed += 1
            stats.statuses["error frame" if error else "no done frame"] += 1
            return
        stats.completed += 1
        stats.chunk_counts[chunks] += 1
        if first is not None:
            stats.ttff_ms.append((first - began) * 1000)
    except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, IndexError) as exc:
        stats.failed += 1
        stats.statuses[type(exc).__name__] += 1
    finally:
        stats.open -= 1
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def probe_health(port: int, interval: float, stop: asyncio.Event, stats: Stats) -> None:
    """``GET /health`` on one keep-alive connection every ``interval`` s; the latency of each.

    The health route does no work, so its latency is the time the request waited for the
    serving event loop: the loop's lag under the streams.
    """
    request = f"GET /health HTTP/1.1\r\nhost: {LOCALHOST}:{port}\r\n\r\n".encode()
    reader = writer = None
    while not stop.is_set():
        began = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(LOCALHOST, port)
            assert reader is not None
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await asyncio.wait_for(reader.readexactly(length), 5)
            if b" 200 " not in head.split(b"\r\n", 1)[0] + b" ":
                stats.health_failed += 1
            else:
                stats.health_ms.append((time.perf_counter() - began) * 1000)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            stats.health_failed += 1
            if writer is not None:
                writer.close()
            reader = writer = None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, interval - (time.perf_counter() - began)))
    if writer is not None:
        writer.close()


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    # Nearest rank: with 100 probes p99 is the 99th, not the largest.
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    body = json.dumps({"topic": args.topic}).encode()
    request = (
        f"POST {args.path} HTTP/1.1\r\nhost: {LOCALHOST}:{args.port}\r\n"
        f"content-type: application/json\r\naccept: text/event-stream\r\n"
        f"x-api-key: {args.api_key}\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    ).encode() + body
    stats = Stats()
    stop = asyncio.Event()
    began = time.perf_counter()
    deadline = began + args.deadline
    prober = asyncio.create_task(probe_health(args.port, args.probe_interval, stop, stats))
    await asyncio.sleep(min(1.0, args.probe_interval * 5))  # a few idle probes first
    tasks: set[asyncio.Task[None]] = set()
    ramp_began = time.perf_counter()
    for i in range(args.streams):
        # Paced: the i-th stream opens no earlier than i / rate seconds into the ramp.
        wait = ramp_began + i / args.rate - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        if time.perf_counter() >= deadline:
            break
        tasks.add(asyncio.create_task(one_stream(args.port, request, stats, deadline)))
    stats.all_open_at = time.perf_counter() - began
    ramp_s = time.perf_counter() - ramp_began
    if tasks:
        await asyncio.wait(tasks, timeout=max(0.0, deadline - time.perf_counter()) + 5)
    for task in tasks:
        task.cancel()
    stop.set()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(prober, 6)
    return {
        "requested": args.streams,
        "started": stats.started,
        "completed": stats.completed,
        "failed": stats.failed,
        "unfinished": stats.started - stats.completed - stats.failed,
        "failures": dict(stats.statuses),
        "chunk_frames": {str(k): v for k, v in sorted(stats.chunk_counts.items())},
        "peak_open": stats.peak_open,
        "ramp_s": ramp_s,
        "wall_s": time.perf_counter() - began,
        "ttff_ms": {"p50": pct(stats.ttff_ms, 0.5), "p99": pct(stats.ttff_ms, 0.99)},
        "health_ms": {
            "p50": pct(stats.health_ms, 0.5),
            "p99": pct(stats.health_ms, 0.99),
            "max": max(stats.health_ms, default=None),
            "probes": len(stats.health_ms),
            "failed": stats.health_failed,
        },
    }


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--streams", type=int, required=True)
    p.add_argument("--rate", type=float, default=500.0, help="new connections per second")
    p.add_argument("--deadline", type=float, default=40.0, help="seconds for the whole run")
    p.add_argument("--probe-interval", type=float, default=0.1)
    p.add_argument("--path", default="/tell-story/stream")
    p.add_argument("--topic", default="lighthouses")
    p.add_argument("--api-key", required=True)
    args = p.parse_args()
    nofile = raise_nofile()
    if nofile < args.streams + 64:
        print(f"RLIMIT_NOFILE {nofile} is too low for {args.streams} streams", file=sys.stderr)
        return 2
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(main_async(args))
    else:
        result = uvloop.run(main_async(args))
    result["nofile"] = nofile
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # Near the wall time means the client's core was full: the numbers are partly its own.
    result["client_cpu_s"] = usage.ru_utime + usage.ru_stime
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
