# SPDX-License-Identifier: Apache-2.0
"""What the pooled provider connections save: kept-alive pool vs a new connection per call.

Runs N model calls, 64 in flight (``--in-flight``), through the real Gemini or OpenAI plugin
as the kit wires it (``choose_model``) against the test suite's fake provider, twice: with the
default pool (connections kept alive) and with ``max_keepalive_connections=0`` (a new TCP
connection per call). Prints the TCP connections the fake accepted and the model call's
p50/p99 for each, and the p50 ratio. It measures, it does not pass or fail.

The fake runs in a process of its own (so its work does not share the client's core
time) on 127.0.0.1, over plain HTTP: a connection costs a loopback TCP handshake only,
where a real provider adds a network round trip or two and TLS — the saving measured
here is the least there is.

    uv run --all-extras python bench/provider_pool.py [--calls N] [--in-flight K] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from genkit import Genkit

from genkit_endpoints import ProviderConfig, ProviderPoolConfig, choose_model

ROOT = Path(__file__).resolve().parents[1]
# The fake provider as a child process: prints its base URL, then answers one line per
# command on stdin ("count": connections accepted since the last "reset"; "cpu": its
# process's CPU seconds so far).
FAKE = """
import sys, time
from tests.fakes.provider import FakeProvider, Reply
with FakeProvider(default=Reply(text="pooled")) as fake:
    print(fake.base_url, flush=True)
    for line in sys.stdin:
        if line.strip() == "reset":
            fake.reset()
            print("ok", flush=True)
        elif line.strip() == "count":
            print(fake.connections_accepted, flush=True)
        elif line.strip() == "cpu":
            print(time.process_time(), flush=True)
"""


class Fake:
    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", FAKE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        self.base_url = self._line()

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line:
            raise RuntimeError("the fake provider did not start")
        return line

    def ask(self, command: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._line()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def provider_config(wire: str, base_url: str, pool: ProviderPoolConfig) -> ProviderConfig:
    if wire == "gemini":
        return ProviderConfig(gemini_api_key="bench", gemini_base_url=base_url, pool=pool)
    return ProviderConfig(
        model="openai/gpt-4o-mini",
        openai_api_key="bench",
        openai_base_url=f"{base_url}/v1",
        pool=pool,
    )


async def run(
    wire: str,
    fake: Fake,
    pool: ProviderPoolConfig,
    *,
    calls: int,
    in_flight: int,
    keep: list[Genkit],
) -> dict[str, float]:
    choice = choose_model(provider_config(wire, fake.base_url, pool))
    ai = Genkit(plugins=list(choice.plugins), model=choice.model)
    # Kept until the loop ends: a Gemini SDK client collected while the loop runs closes
    # its connections from its finalizer, which was seen to stall a later run's calls.
    keep.append(ai)
    gate = asyncio.Semaphore(in_flight)
    durations: list[float] = []

    async def one(i: int) -> None:
        async with gate:
            started = time.perf_counter()
            r = await ai.generate(prompt=f"call {i}")
            durations.append(time.perf_counter() - started)
            if r.text != "pooled":
                raise RuntimeError(f"call {i} failed: {r.finish_message}")

    await asyncio.gather(*(one(i) for i in range(in_flight)))  # warm-up: plugin, imports
    fake.ask("reset")
    durations.clear()
    fake_cpu = float(fake.ask("cpu"))
    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(calls)))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    fake_cpu = float(fake.ask("cpu")) - fake_cpu
    cuts = statistics.quantiles(durations, n=100)
    return {
        "connections": float(fake.ask("count")),
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
        "calls_per_s": calls / elapsed,
        # Share of one core each process was busy: near 100 % the queue, not the
        # connections, sets the latency.
        "client_busy": cpu / elapsed,
        "fake_busy": fake_cpu / elapsed,
    }


async def bench(fake: Fake, wires: list[str], calls: int, in_flight: int, rounds: int) -> None:
    modes = {
        "pooled (defaults)": ProviderPoolConfig(),
        "no keep-alive": ProviderPoolConfig(max_keepalive_connections=0),
    }
    keep: list[Genkit] = []
    for wire in wires:
        results: dict[str, list[dict[str, float]]] = {name: [] for name in modes}
        for i in range(rounds):  # the mode that goes first alternates
            for name in sorted(modes, reverse=i % 2 == 1):
                results[name].append(
                    await run(wire, fake, modes[name], calls=calls, in_flight=in_flight, keep=keep)
                )
        p50 = {}
        for name, runs in results.items():
            p50[name] = statistics.median(r["p50_ms"] for r in runs)
            print(
                f"{wire:6} {name:18} {calls} calls, {in_flight} in flight: "
                f"{statistics.median(r['connections'] for r in runs):5.0f} connections opened, "
                f"p50 {p50[name]:6.1f} ms, "
                f"p99 {statistics.median(r['p99_ms'] for r in runs):6.1f} ms, "
                f"{statistics.median(r['calls_per_s'] for r in runs):5.0f} calls/s, "
                f"client/fake busy {statistics.median(r['client_busy'] for r in runs):4.0%}"
                f"/{statistics.median(r['fake_busy'] for r in runs):4.0%}"
            )
        ratio = p50["no keep-alive"] / p50["pooled (defaults)"]
        print(f"{wire:6} p50 without keep-alive / pooled: {ratio:.2f}x (median of {rounds})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="measured calls per run")
    parser.add_argument("--in-flight", type=int, default=64, help="calls in flight at once")
    parser.add_argument("--rounds", type=int, default=3, help="runs per mode; medians shown")
    parser.add_argument("--wire", choices=["gemini", "openai", "both"], default="both")
    args = parser.parse_args()
    os.environ.pop("GENKIT_ENV", None)  # no reflection server
    wires = ["gemini", "openai"] if args.wire == "both" else [args.wire]
    fake = Fake()
    try:
        # One event loop for every run: an SDK client collected later closes its
        # connections on the loop that opened them.
        asyncio.run(bench(fake, wires, args.calls, args.in_flight, args.rounds))
    finally:
        fake.close()


if __name__ == "__main__":
    main()
