# SPDX-License-Identifier: Apache-2.0
"""Python load client for ``bench/resilience.py``: many requests in flight, per-request bodies.

Two modes, run as a child process pinned to the load core, one JSON line on stdout:

* ``inflight``: N keep-alive connections, each sending its next request when the
  previous answer is complete (a closed loop like ``_pyload``), but with a distinct
  body per request, so a cache or single-flight can never merge two of them. With a
  model that takes 1 s, N connections are N requests in flight. Only answers completed
  inside the measured window (after ``--warmup``) count, so the ramp-up (no answer can
  arrive in the first second) and the tail (the last requests still in flight) do not
  drag the rate down.
* ``burst``: N connections opened first, then one identical request on each at the same
  moment, spread round-robin over ``--ports``; reports the statuses, how many distinct
  answer bodies came back and the wall time from sending to the last answer.

It speaks HTTP/1.1 over raw asyncio streams (uvloop when installed), as ``_pyload`` does,
to keep its own CPU per request low.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import time
from collections.abc import Sequence

from _pyload import build_request, curve_ms, run_loop

HOST = "127.0.0.1"


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status, length = int(head[9:12]), None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise ValueError("response without content-length")
    return status, await reader.readexactly(length)


def _fill(body: str, c: int, k: int) -> bytes:
    return body.replace("{c}", str(c)).replace("{k}", str(k)).encode()


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))] * 1000


async def inflight(  # noqa: PLR0917 - one caller, the command line
    port: int,
    path: str,
    body: str,
    connections: int,
    warmup: float,
    duration: float,
    limit: float,
) -> dict[str, object]:
    """``{c}`` (connection) and ``{k}`` (request number) in ``body`` make each body distinct."""
    began = time.perf_counter()
    window = (began + warmup, began + warmup + duration)
    latencies: list[float] = []
    errors = {"non_2xx": 0, "connect": 0, "read": 0, "timeout": 0}
    statuses: dict[str, int] = {}

    async def client(c: int) -> None:
        k = 0
        while time.perf_counter() < window[1]:
            try:
                async with asyncio.timeout(limit):
                    reader, writer = await asyncio.open_connection(HOST, port)
            except (OSError, TimeoutError):
                errors["connect"] += 1
                await asyncio.sleep(0.05)
                continue
            try:
                while (start := time.perf_counter()) < window[1]:
                    k += 1
                    writer.write(build_request(HOST, port, "POST", path, _fill(body, c, k)))
                    async with asyncio.timeout(limit):
                        status, _ = await _response(reader)
                    done = time.perf_counter()
                    if not 200 <= status < 300:
                        errors["non_2xx"] += 1
                        statuses[str(status)] = statuses.get(str(status), 0) + 1
                    elif window[0] <= done <= window[1]:
                        latencies.append(done - start)
            except TimeoutError:
                errors["timeout"] += 1
            except (OSError, ValueError, asyncio.IncompleteReadError):
                errors["read"] += 1
            finally:
                writer.close()

    cpu_began = time.process_time()
    async with asyncio.timeout(warmup + duration + limit + 10):
        await asyncio.gather(*(client(c) for c in range(connections)))
    return {
        "requests": len(latencies),
        "duration_s": duration,
        "rps": len(latencies) / duration,
        "p50_ms": _percentile(latencies, 50),
        "p99_ms": _percentile(latencies, 99),
        "max_ms": max(latencies, default=0) * 1000,
        "percentiles_ms": curve_ms(sorted(latencies)),
        "errors": errors,
        "statuses": statuses,
        "load_cpu_s": time.process_time() - cpu_began,
    }


async def burst(
    ports: Sequence[int], path: str, body: str, count: int, limit: float
) -> dict[str, object]:
    async with asyncio.timeout(limit):
        conns = await asyncio.gather(
            *(asyncio.open_connection(HOST, ports[i % len(ports)]) for i in range(count))
        )
    go = asyncio.Event()
    latencies: list[float] = []

    async def one(i: int) -> tuple[int, str]:
        reader, writer = conns[i]
        port = ports[i % len(ports)]
        request = build_request(HOST, port, "POST", path, body.encode())
        await go.wait()
        start = time.perf_counter()
        try:
            writer.write(request)
            status, answer = await _response(reader)
            latencies.append(time.perf_counter() - start)
            return status, hashlib.sha256(answer).hexdigest()
        except (OSError, ValueError, asyncio.IncompleteReadError):
            return 0, ""
        finally:
            writer.close()

    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    await asyncio.sleep(0.2)  # every task is parked on the event
    began = time.perf_counter()
    go.set()
    async with asyncio.timeout(limit):
        results = await asyncio.gather(*tasks)
    wall = time.perf_counter() - began
    statuses: dict[str, int] = {}
    for status, _ in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {
        "requests": count,
        "wall_s": wall,
        "statuses": statuses,
        "distinct_bodies": len({digest for status, digest in results if status == 200}),
        "p50_ms": _percentile(latencies, 50),
        "p99_ms": _percentile(latencies, 99),
    }


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("mode", choices=("inflight", "burst"))
    p.add_argument("--ports", required=True, help="comma-separated")
    p.add_argument("--path", required=True)
    p.add_argument("--body", required=True)
    p.add_argument("--count", type=int, default=1000, help="connections / requests")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--timeout", type=float, default=60.0, help="per request, seconds")
    a = p.parse_args(argv)
    ports = [int(x) for x in a.ports.split(",")]
    if a.mode == "inflight":
        coro = inflight(ports[0], a.path, a.body, a.count, a.warmup, a.duration, a.timeout)
    else:
        coro = burst(ports, a.path, a.body, a.count, a.timeout)
    print(json.dumps(run_loop(coro)))


if __name__ == "__main__":
    main()
