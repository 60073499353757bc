# SPDX-License-Identifier: Apache-2.0
"""gRPC load generator: N ``Health`` or ``TellJoke`` calls kept in flight for a fixed time.

Closed loop, like wrk for HTTP: each of ``--concurrency`` workers starts its next call
as soon as the previous one finished, all on ``--channels`` channels (one HTTP/2
connection each), until the deadline; the result is one JSON line on stdout with the
fields of ``_load.LoadResult``. ``--rpc`` picks the call: ``health`` (the empty
``HealthRequest``) or ``joke`` (``TellJoke`` with ``name: "Mittens"``, the REST load's
body). Calls go out as raw bytes and the answers are compared as bytes with the
expected answer — for ``Health`` the known ``HealthResponse``, for ``TellJoke`` the
answer of one call made before the clock starts (the offline model answers the same
request the same way) — so the client spends no CPU on protobuf under load.
``--api-key`` sends ``x-api-key`` metadata with every call, as the REST load sends its
header (a server without keys ignores it). ``--check`` makes one call instead and prints
what it got (status or joke and username, and the ``x-request-id`` trailing metadata);
``--wait`` polls until ``Health`` answers, for at most that many seconds. Runs in its own
process pinned to the load core; the harness never imports gRPC itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from collections.abc import Coroutine, Sequence
from typing import Any

import grpc

from _pyload import curve_ms
from endpoints_hello.generated import genkit_sample_pb2

HEALTH = "/genkit.sample.v1.GenkitService/Health"
TELL_JOKE = "/genkit.sample.v1.GenkitService/TellJoke"
REQUEST = genkit_sample_pb2.HealthRequest().SerializeToString()
EXPECTED: bytes = genkit_sample_pb2.HealthResponse(status="ok").SerializeToString()
JOKE_REQUEST = genkit_sample_pb2.JokeRequest(name="Mittens").SerializeToString()
RPCS = {"health": (HEALTH, REQUEST), "joke": (TELL_JOKE, JOKE_REQUEST)}
Metadata = tuple[tuple[str, str], ...]
CALL_TIMEOUT = 2.0  # seconds, like wrk's request timeout


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(q / 100 * (len(sorted_values) - 1)))
    return sorted_values[index]


def _metadata(api_key: str | None) -> Metadata:
    return (("x-api-key", api_key),) if api_key else ()


async def _worker(
    call: grpc.aio.UnaryUnaryMultiCallable,
    *,
    request: bytes,
    expected: bytes,
    metadata: Metadata,
    deadline: float,
    latencies: list[float],
    errors: Counter[str],
) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        start = time.perf_counter()
        try:
            reply = await call(request, timeout=CALL_TIMEOUT, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            errors[exc.code().name] += 1
            continue
        latencies.append(time.perf_counter() - start)
        if reply != expected:
            errors["WRONG_REPLY"] += 1


async def _expected(call: grpc.aio.UnaryUnaryMultiCallable, rpc: str, metadata: Metadata) -> bytes:
    """The answer every call under load must give: known for Health, asked for TellJoke."""
    if rpc == "health":
        return EXPECTED
    reply: bytes = await call(JOKE_REQUEST, timeout=10, metadata=metadata)
    if not genkit_sample_pb2.JokeResponse.FromString(reply).joke:
        raise SystemExit(f"TellJoke answered without a joke: {reply!r}")
    return reply


async def load(
    port: int,
    *,
    rpc: str,
    api_key: str | None,
    concurrency: int,
    channels: int,
    duration: float,
) -> dict[str, Any]:
    target = f"127.0.0.1:{port}"
    method, request = RPCS[rpc]
    metadata = _metadata(api_key)
    chans = [grpc.aio.insecure_channel(target) for _ in range(channels)]
    try:
        calls = [ch.unary_unary(method) for ch in chans]  # bytes in, bytes out
        for ch in chans:
            await asyncio.wait_for(ch.channel_ready(), 10)
        expected = await _expected(calls[0], rpc, metadata)
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        loop = asyncio.get_running_loop()
        began = time.perf_counter()
        cpu_began = time.process_time()  # every thread, gRPC core's pollers included
        deadline = loop.time() + duration
        async with asyncio.timeout(duration + CALL_TIMEOUT + 5):
            await asyncio.gather(
                *(
                    _worker(
                        calls[i % channels],
                        request=request,
                        expected=expected,
                        metadata=metadata,
                        deadline=deadline,
                        latencies=latencies,
                        errors=errors,
                    )
                    for i in range(concurrency)
                )
            )
        elapsed = time.perf_counter() - began
        cpu = time.process_time() - cpu_began
    finally:
        for ch in chans:
            await ch.close()
    lat = sorted(latencies)
    return {
        "requests": len(lat),
        "duration_s": elapsed,
        "rps": len(lat) / elapsed,
        "p50_ms": _percentile(lat, 50) * 1000,
        "p99_ms": _percentile(lat, 99) * 1000,
        "percentiles_ms": curve_ms(lat),
        # Calls that ended with a status other than OK, or answered something else.
        "non_2xx": sum(n for code, n in errors.items() if code != "DEADLINE_EXCEEDED"),
        "socket_errors": errors["DEADLINE_EXCEEDED"],
        "timeouts": errors["DEADLINE_EXCEEDED"],
        "load_cpu_s": cpu,
        "errors": dict(errors),
    }


async def check(port: int, *, rpc: str, api_key: str | None) -> dict[str, Any]:
    """One call through the generated stub: what it answered and the request id echoed.

    Health: ``status``; TellJoke: ``joke`` and ``username``. Plus ``request_id`` (None
    when the server sent none) and, for a call that failed, ``error`` (the status name).
    """
    from endpoints_hello.generated import genkit_sample_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = genkit_sample_pb2_grpc.GenkitServiceStub(ch)  # type: ignore[no-untyped-call]
        if rpc == "health":
            call = stub.Health(genkit_sample_pb2.HealthRequest(), timeout=5)
        else:
            request = genkit_sample_pb2.JokeRequest(name="Mittens")
            call = stub.TellJoke(request, timeout=10, metadata=_metadata(api_key))
        try:
            reply = await call
        except grpc.aio.AioRpcError as exc:
            return {"error": exc.code().name, "details": exc.details()}
        metadata = dict(await call.trailing_metadata() or ())
    rid = metadata.get("x-request-id")
    out: dict[str, Any] = {"request_id": rid if isinstance(rid, str) else None}
    if rpc == "health":
        return {**out, "status": reply.status}
    return {**out, "joke": reply.joke, "username": reply.username}


async def wait(port: int, seconds: float) -> dict[str, Any]:
    """Poll ``Health`` every 10 ms until it answers OK; seconds waited, or an error."""
    began = time.perf_counter()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = ch.unary_unary(HEALTH)
        while (waited := time.perf_counter() - began) < seconds:
            try:
                if await call(REQUEST, timeout=1.0) == EXPECTED:
                    return {"ready_after_s": waited}
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.01)
    return {"error": f"Health did not answer ok within {seconds:.0f} s"}


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Drive a gRPC RPC (see module docstring).")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rpc", choices=tuple(RPCS), default="health", help="the call (health)")
    p.add_argument("--api-key", help="sent as x-api-key metadata with every call")
    p.add_argument("--concurrency", type=int, default=64, help="calls in flight (64)")
    p.add_argument("--channels", type=int, default=1, help="HTTP/2 connections (1)")
    p.add_argument("--duration", type=float, default=8.0, help="seconds of load (8)")
    p.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="auto: uvloop when installed (a few %% cheaper per call than asyncio's loop)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="one call; print answer and id")
    mode.add_argument("--wait", type=float, metavar="SECONDS", help="poll until Health is ok")
    a = p.parse_args(argv)
    if a.concurrency < 1 or a.channels < 1 or not a.duration > 0:
        p.error("--concurrency and --channels must be >= 1, --duration > 0")
    if a.check:
        coro = check(a.port, rpc=a.rpc, api_key=a.api_key)
    elif a.wait is not None:
        coro = wait(a.port, a.wait)
    else:
        coro = load(
            a.port,
            rpc=a.rpc,
            api_key=a.api_key,
            concurrency=a.concurrency,
            channels=a.channels,
            duration=a.duration,
        )
    print(json.dumps(_run(coro, a.loop)))


def _run(coro: Coroutine[Any, Any, dict[str, Any]], loop: str) -> dict[str, Any]:
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                raise
        else:
            return uvloop.run(coro)
    return asyncio.run(coro)


if __name__ == "__main__":
    main()
