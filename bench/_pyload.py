# SPDX-License-Identifier: Apache-2.0
"""Fallback load generator for machines without ``wrk``: closed-loop keep-alive clients.

Like ``wrk -c N``: N connections, each sending its next request as soon as the previous
response is complete, for a fixed time; the result is one JSON line on stdout. It uses
raw asyncio streams (uvloop when installed) rather than an HTTP client library, which
would cost the load generator several times more CPU per request than the servers it
measures. Even so one Python core saturates far earlier than wrk: treat its req/s as a
lower bound and its ratios as compressed towards 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from _load import JSON_HEADERS

T = TypeVar("T")

REQUEST_TIMEOUT = 2.0  # wrk's default per-request timeout


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    non_2xx: int = 0
    connect_errors: int = 0
    read_errors: int = 0
    timeouts: int = 0


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop when it is installed (a faster client), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def build_request(host: str, port: int, method: str, path: str, body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    if body:
        lines += [f"{k}: {v}" for k, v in JSON_HEADERS.items()]
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise ValueError("response without content-length")  # chunked: not used here
    await reader.readexactly(length)
    return status


async def _client(host: str, port: int, request: bytes, deadline: float, tally: Tally) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), REQUEST_TIMEOUT
            )
        except (OSError, TimeoutError):
            tally.connect_errors += 1
            await asyncio.sleep(0.01)
            continue
        try:
            while loop.time() < deadline:
                # perf_counter, not loop.time(): uvloop's clock has millisecond steps.
                start = time.perf_counter()
                writer.write(request)
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    status = await _read_response(reader)
                tally.latencies.append(time.perf_counter() - start)
                if not 200 <= status < 400:
                    tally.non_2xx += 1
        except TimeoutError:
            tally.timeouts += 1
        except (OSError, ValueError, asyncio.IncompleteReadError):
            tally.read_errors += 1
        finally:
            writer.close()


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(q / 100 * (len(sorted_values) - 1)))
    return sorted_values[index]


# The percentiles the Python load generators report, for the charts' latency curves.
CURVE = (50, 75, 90, 95, 99, 99.9)


def curve_ms(sorted_seconds: Sequence[float]) -> dict[str, float]:
    """Latency at each percentile of ``CURVE`` in ms, keyed ``"50"`` … ``"99.9"``."""
    return (
        {f"{q:g}": _percentile(sorted_seconds, q) * 1000 for q in CURVE} if sorted_seconds else {}
    )


async def run(
    host: str, port: int, *, method: str, path: str, body: bytes, connections: int, duration: float
) -> dict[str, float | int]:
    request = build_request(host, port, method, path, body)
    tally = Tally()
    loop = asyncio.get_running_loop()
    began = time.perf_counter()
    cpu_began = time.process_time()
    deadline = loop.time() + duration
    async with asyncio.timeout(duration + REQUEST_TIMEOUT + 5):
        await asyncio.gather(
            *(_client(host, port, request, deadline, tally) for _ in range(connections))
        )
    elapsed = time.perf_counter() - began
    lat = sorted(tally.latencies)
    return {
        "requests": len(lat),
        "duration_s": elapsed,
        "rps": len(lat) / elapsed,
        "p50_ms": _percentile(lat, 50) * 1000,
        "p99_ms": _percentile(lat, 99) * 1000,
        "percentiles_ms": curve_ms(lat),
        "non_2xx": tally.non_2xx,
        "socket_errors": tally.connect_errors + tally.read_errors + tally.timeouts,
        "timeouts": tally.timeouts,
        "load_cpu_s": time.process_time() - cpu_began,
    }


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--method", default="GET")
    p.add_argument("--path", default="/health")
    p.add_argument("--body", default="")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--duration", type=float, default=10.0)
    a = p.parse_args(argv)
    coro = run(
        a.host,
        a.port,
        method=a.method,
        path=a.path,
        body=a.body.encode(),
        connections=a.connections,
        duration=a.duration,
    )
    print(json.dumps(run_loop(coro)))


if __name__ == "__main__":
    main()
