# SPDX-License-Identifier: Apache-2.0
"""Resilience benchmark: cache hits, rate-limit cost, 1 000 in flight, stampedes.

Four parts, each printed as a table (``--parts`` picks them), all on uvicorn with our
app pinned to one core and the load (and Redis) on the other:

* ``cache``: cache-hit ``POST /translate`` (one fixed body) with the cache on memory,
  and with ``REDIS_URL`` (cache, rate limits and breaker on Redis), against the bare
  FastAPI app's ``POST /tell-joke`` on the same server; ratios next to the targets
  (memory >= 0.5x, Redis >= 0.35x, informational).
* ``ratelimit``: the same cache-hit request with rate limiting off, on memory (both
  strategies) and on Redis: server CPU per request and what the limiter adds; then
  ``RateLimiter.hit`` timed in-process, the cleaner per-call number.
* ``inflight``: 1 000 requests kept in flight on ``POST /tell-joke`` (distinct bodies,
  no cache) against a model that takes 1 s: throughput, latency, errors, RSS.
* ``stampede``: 1 000 identical concurrent ``POST /translate`` misses, model calls
  counted by the cache's ``cache_fill`` log line: one process on memory, then three
  processes sharing Redis.

A benchmark, not a test: it measures and prints; exit 1 only when something broke (a
server did not start or answered wrongly). See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from _apps import JOKE_BODY, serve, server_env
from _load import JSON_HEADERS, LoadGenerator, LoadResult, Target, choose
from _proc import (
    BenchError,
    Children,
    bench_cpus,
    busy_cpus,
    busy_seconds,
    cpu_seconds,
    cpu_ticks,
    http_request,
    run_harness,
)
from _resilience_env import (
    limiter_probe,
    log_events,
    python_load,
    rss_mib,
    serve_ours,
    start_redis,
    warnings_in,
)

PARTS = ("cache", "ratelimit", "inflight", "stampede")
RESULTS = Path(__file__).resolve().parent / "results" / "resilience.json"
# Admit everything: the limiter does its full work on every request but never refuses.
LIMITS = {"RATE_LIMIT_DEFAULT": "100000000/minute", "RATE_LIMIT_STRATEGY": "sliding-window-counter"}
GOALS = {"ours, cache on memory": 0.6, "ours, all on Redis": 0.4}
# 1 000 in flight at 1 s model latency, one process: the tail stays near the model's latency
# and memory does not grow with the load.
INFLIGHT_MAX_P99_MS = 1200.0
INFLIGHT_MAX_RSS_GROWTH_MIB = 100.0


def inflight_verdicts(doc: dict[str, Any]) -> list[str]:
    """The in-flight run against its targets: p99 latency and RSS growth (peak - before)."""
    p99, growth = doc["p99_ms"], doc["rss_peak_mib"] - doc["rss_before_mib"]
    errors = doc["errors"]  # counts by kind
    failed = sum(errors.values()) if isinstance(errors, dict) else int(errors)
    p99_ok = p99 is not None and p99 <= INFLIGHT_MAX_P99_MS and not failed
    return [
        f"p99 {'-' if p99 is None else f'{p99:.0f}'} ms, {failed} errors "
        f"(<= {INFLIGHT_MAX_P99_MS:.0f} ms, none): {'PASS' if p99_ok else 'MISS'}",
        f"RSS growth {growth:.0f} MiB (<= {INFLIGHT_MAX_RSS_GROWTH_MIB:.0f}): "
        f"{'PASS' if growth <= INFLIGHT_MAX_RSS_GROWTH_MIB else 'MISS'}",
    ]


def translate_body(tag: str) -> bytes:
    return json.dumps({"text": f"Good morning ({tag})", "target_language": "French"}).encode()


class Run:
    def __init__(self, args: argparse.Namespace, workdir: Path, children: Children) -> None:
        self.args, self.workdir, self.children = args, workdir, children
        self.env = server_env()
        self.server_cpu, self.load_cpu = bench_cpus()
        self.redis_url: str | None = None
        self.redis_pid: int | None = None
        self.gen: LoadGenerator | None = None
        self.out: dict[str, Any] = {}
        self.notes: list[str] = []

    def redis(self) -> str:
        if self.redis_url is None:
            self.redis_url, self.redis_pid = start_redis(self.children, self.workdir, self.load_cpu)
        return self.redis_url

    def ours(self, settings: dict[str, str], label: str) -> contextlib.AbstractContextManager[Any]:
        return serve_ours(
            settings,
            base_env=self.env,
            children=self.children,
            cpu=self.server_cpu,
            workdir=self.workdir,
            label=label,
        )

    def load(
        self, port: int, pid: int, target: Target, label: str, *, redis: bool
    ) -> tuple[LoadResult, float | None]:
        """Warm-up, then one measured wrk run: (result with server CPU, Redis µs/request)."""
        assert self.gen is not None

        def drive(seconds: int) -> LoadResult:
            assert self.gen is not None
            return self.gen.run(
                self.children,
                port,
                target,
                connections=self.args.connections,
                duration=seconds,
                cpu=self.load_cpu,
            )

        status, _, body = http_request(
            port, target.method, target.path, body=target.body, headers=JSON_HEADERS
        )
        if status != 200:
            raise BenchError(f"{target.label} gave {status} {body[:200]!r}")
        if self.args.warmup:
            drive(self.args.warmup)
        ticks, cpu0 = cpu_ticks(), cpu_seconds(pid)
        redis0 = cpu_seconds(self.redis_pid) if redis and self.redis_pid else None
        result = drive(self.args.duration)
        server_cpu = cpu_seconds(pid) - cpu0
        others = None
        if self.server_cpu is not None and (
            spent := busy_seconds(ticks, cpu_ticks(), self.server_cpu)
        ):
            others = max(0.0, spent[0] - server_cpu) / spent[1] if spent[1] else None
        redis_us = None
        if redis0 is not None and self.redis_pid and result.requests:
            redis_us = (cpu_seconds(self.redis_pid) - redis0) / result.requests * 1e6
        if result.non_2xx or result.socket_errors or not result.requests:
            raise BenchError(
                f"{target.label}: {result.non_2xx} non-2xx, {result.socket_errors} "
                f"socket errors of {result.requests} under load"
            )
        if others is not None and others > 0.10:
            self.notes.append(f"{label}: other processes took {others:.0%} of the server core")
        return replace(result, server_cpu_s=server_cpu, others_on_server_core=others), redis_us

    # -- parts ---------------------------------------------------------------------------

    def part_cache(self) -> str:
        rows: list[tuple[str, LoadResult, float | None]] = []
        with serve(
            "bare",
            "uvicorn",
            children=self.children,
            cpu=self.server_cpu,
            env=self.env,
            workdir=self.workdir,
        ) as bare:
            print("resilience: cache: bare POST /tell-joke …", flush=True)
            rows.append(
                (
                    "bare FastAPI, POST /tell-joke",
                    *self.load(bare.port, bare.pid, _joke(), "bare", redis=False),
                )
            )
        translate = Target("POST /translate", "POST", "/translate", translate_body("cache"))
        for label, extra in (
            ("ours, cache on memory", {}),
            ("ours, all on Redis", {"REDIS_URL": self.redis()}),
        ):
            print(f"resilience: cache: {label} …", flush=True)
            with self.ours({"CACHE_ENABLED": "true", **LIMITS, **extra}, label) as app:
                rows.append(
                    (label, *self.load(app.port, app.pid, translate, label, redis=bool(extra)))
                )
                self._warnings(label, [app.log])
        base = rows[0][1].rps
        lines = [
            "== cache-hit POST /translate (ours) vs POST /tell-joke (bare FastAPI), uvicorn ==",
            f"{'app':32} {'req/s':>8} {'/bare':>6} {'target':>8} {'p50 / p99 ms':>16} "
            f"{'server µs/req':>14} {'redis µs/req':>13}",
        ]
        for label, r, redis_us in rows:
            goal = GOALS.get(label)
            ratio = r.rps / base if base else 0.0
            verdict = f">={goal:.2f} {'PASS' if ratio >= goal else 'MISS'}" if goal else ""
            lines.append(
                f"{label:32} {r.rps:8.0f} {ratio:6.2f} {verdict:>8} "
                f"{r.p50_ms:7.2f} / {r.p99_ms:6.2f} "
                f"{_us(r.cpu_us_per_request):>14} {_us(redis_us):>13}"
            )
            self.out.setdefault("cache", {})[label] = {
                **r.as_dict(),
                "redis_us": redis_us,
                "ratio": ratio,
            }
        return "\n".join(lines)

    def part_ratelimit(self) -> str:
        body = translate_body("ratelimit")
        translate = Target("POST /translate", "POST", "/translate", body)
        configs = [
            ("off", {"RATE_LIMIT_ENABLED": "false"}),
            ("memory, moving-window", {"RATE_LIMIT_STRATEGY": "moving-window"}),
            ("memory, sliding-window-counter", {}),
            ("Redis, moving-window", {"RATE_LIMIT_STRATEGY": "moving-window", "redis": ""}),
            ("Redis, sliding-window-counter", {"redis": ""}),
        ]
        rows = []
        for label, extra in configs:
            settings = {"CACHE_ENABLED": "true", **LIMITS, **extra}
            if settings.pop("redis", None) is not None:
                settings["RATE_LIMIT_REDIS_URL"] = self.redis()
            print(f"resilience: ratelimit: {label} …", flush=True)
            uses_redis = "RATE_LIMIT_REDIS_URL" in settings
            with self.ours(settings, f"rl-{len(rows)}") as app:
                result = self.load(
                    app.port, app.pid, translate, f"rate limit {label}", redis=uses_redis
                )
                rows.append((label, *result))
                self._warnings(f"rate limit {label}", [app.log])
        off = rows[0][1].cpu_us_per_request or 0.0
        lines = [
            "== rate-limit cost per request: cache-hit POST /translate, limiter off vs on ==",
            f"{'rate limiting':32} {'req/s':>8} {'p50 / p99 ms':>16} {'server µs/req':>14} "
            f"{'added µs':>9} {'redis µs/req':>13}",
        ]
        for label, r, redis_us in rows:
            us = r.cpu_us_per_request or 0.0
            added = f"{us - off:+.0f}" if label != "off" else ""
            lines.append(
                f"{label:32} {r.rps:8.0f} {r.p50_ms:7.2f} / {r.p99_ms:6.2f} {us:14.0f} "
                f"{added:>9} {_us(redis_us):>13}"
            )
            self.out.setdefault("ratelimit", {})[label] = {**r.as_dict(), "redis_us": redis_us}
        lines += [
            "",
            "RateLimiter.hit in-process, one key, every call admitted "
            f"({self.args.probe_seconds:.1f} s each, uvloop, pinned to the server core)",
            f"{'backend, strategy':32} {'calls':>8} {'wall µs/call':>13} {'CPU µs/call':>12}",
        ]
        for backend, url in (("memory", None), ("Redis", self.redis())):
            for strategy in ("moving-window", "sliding-window-counter"):
                print(f"resilience: ratelimit: in-process {backend} {strategy} …", flush=True)
                with _pinned(self.server_cpu):
                    calls, wall, cpu = limiter_probe(url, strategy, self.args.probe_seconds)
                label = f"{backend}, {strategy}"
                lines.append(f"{label:32} {calls:8d} {wall:13.1f} {cpu:12.1f}")
                self.out.setdefault("limiter_probe", {})[label] = {
                    "calls": calls,
                    "wall_us": wall,
                    "cpu_us": cpu,
                }
        return "\n".join(lines)

    def part_inflight(self) -> str:
        n, delay = self.args.inflight, self.args.model_latency
        settings = {
            **LIMITS,
            "CACHE_ENABLED": "false",
            "OFFLINE_FIRST_CHUNK_DELAY": str(delay),
            "MAX_CONCURRENT_REQUESTS": str(max(1000, 2 * n)),
        }
        print(
            f"resilience: inflight: {n} in flight for {self.args.inflight_duration} s …", flush=True
        )
        with self.ours(settings, "inflight") as app:
            status, _, body = http_request(
                app.port,
                "POST",
                "/tell-joke",
                body=JOKE_BODY,
                headers=JSON_HEADERS,
                timeout=delay / 1000 + 10,
            )
            if status != 200:
                raise BenchError(f"POST /tell-joke gave {status} {body[:200]!r}")
            rss_before = rss_mib(app.pid)
            cpu0 = cpu_seconds(app.pid)
            warmup = delay / 1000 + 1
            doc = python_load(
                self.children,
                self.load_cpu,
                [
                    "inflight",
                    f"--ports={app.port}",
                    "--path=/tell-joke",
                    '--body={"name":"cat {c}-{k}"}',
                    f"--count={n}",
                    f"--warmup={warmup}",
                    f"--duration={self.args.inflight_duration}",
                    "--timeout=30",
                ],
                timeout=warmup + self.args.inflight_duration + 90,
            )
            cpu = cpu_seconds(app.pid) - cpu0
            rss_after, rss_peak = rss_mib(app.pid), rss_mib(app.pid, "VmHWM")
            self._warnings("inflight", [app.log])
        ideal = n / (delay / 1000) if delay else float("inf")
        self.out["inflight"] = {
            **doc,
            "in_flight": n,
            "model_latency_ms": delay,
            "rss_before_mib": rss_before,
            "rss_after_mib": rss_after,
            "rss_peak_mib": rss_peak,
            "server_cpu_s": cpu,
        }
        errors = doc["errors"]
        lines = [
            f"== {n} requests in flight, POST /tell-joke (distinct bodies, no cache), model "
            f"latency {delay:.0f} ms, one process ==",
            f"throughput          {doc['rps']:.0f} req/s (ideal {ideal:.0f}; "
            f"{doc['requests']} answers in {doc['duration_s']} s after {warmup:.0f} s ramp-up)",
            f"latency p50 / p99   {_ms(doc['p50_ms'])} / {_ms(doc['p99_ms'])} ms "
            f"(max {_ms(doc['max_ms'])}; model alone: {delay:.0f})",
            f"errors              {errors} statuses {doc['statuses'] or '{}'}",
            f"server RSS          {rss_before:.0f} MiB before, {rss_after:.0f} MiB after, "
            f"{rss_peak:.0f} MiB peak (VmHWM)",
            f"server CPU          {cpu:.1f} s; load client CPU {doc['load_cpu_s']:.1f} s",
            *(f"target              {line}" for line in inflight_verdicts(self.out["inflight"])),
        ]
        return "\n".join(lines)

    def part_stampede(self) -> str:
        n, delay = self.args.stampede, self.args.model_latency
        base = {
            **LIMITS,
            "CACHE_ENABLED": "true",
            "LOG_LEVEL": "debug",
            "OFFLINE_FIRST_CHUNK_DELAY": str(delay),
            "MAX_CONCURRENT_REQUESTS": str(max(1000, 2 * n)),
        }
        lines = [
            f"== {n} identical concurrent misses, POST /translate, model latency {delay:.0f} ms "
            "(2 model calls per flow run: tool request, then answer) ==",
            f"{'setup':34} {'flow runs':>9} {'want':>5} {'wall s':>7} {'p50 / p99 ms':>18} "
            f"{'distinct':>8}  statuses",
        ]
        for label, procs, extra in (
            ("memory, 1 process", 1, {}),
            (
                f"Redis, {self.args.processes} processes",
                self.args.processes,
                {"REDIS_URL": self.redis()},
            ),
        ):
            print(f"resilience: stampede: {label} …", flush=True)
            with contextlib.ExitStack() as stack:
                apps = [
                    stack.enter_context(self.ours({**base, **extra}, f"st{i}"))
                    for i in range(procs)
                ]
                doc = python_load(
                    self.children,
                    self.load_cpu,
                    [
                        "burst",
                        "--ports=" + ",".join(str(a.port) for a in apps),
                        "--path=/translate",
                        f"--body={translate_body(uuid.uuid4().hex[:8]).decode()}",
                        f"--count={n}",
                        f"--timeout={delay / 1000 * 2 + 60}",
                    ],
                    timeout=delay / 1000 * 2 + 120,
                )
                time.sleep(0.3)  # the last log lines reach the files
                fills = sum(log_events(a.log, "cache_fill") for a in apps)
                self._warnings(f"stampede {label}", [a.log for a in apps])
            self.out.setdefault("stampede", {})[label] = {**doc, "flow_runs": fills}
            lines.append(
                f"{label:34} {fills:9d} {1:5d} {doc['wall_s']:7.2f} "
                f"{_ms(doc['p50_ms']):>8} / {_ms(doc['p99_ms']):>7} {doc['distinct_bodies']:8d}  "
                f"{doc['statuses']}"
            )
        return "\n".join(lines)

    def _warnings(self, what: str, logs: Sequence[Path]) -> None:
        events = sorted({e for log in logs for e in warnings_in(log)})
        if events:
            self.notes.append(f"{what}: server logged {', '.join(events)}")


def _joke() -> Target:
    return Target("POST /tell-joke", "POST", "/tell-joke", JOKE_BODY)


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _ms(value: object) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:.0f}"


@contextlib.contextmanager
def _pinned(cpu: int | None) -> Any:
    import os

    before = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated from {','.join(PARTS)}"
    )
    p.add_argument("--duration", type=int, default=5, help="seconds per wrk measurement (5)")
    p.add_argument("--warmup", type=int, default=1, help="seconds of wrk warm-up (1)")
    p.add_argument("--connections", type=int, default=50, help="wrk connections (50)")
    p.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    p.add_argument("--probe-seconds", type=float, default=1.5, help="per in-process probe (1.5)")
    p.add_argument("--inflight", type=int, default=1000, help="requests in flight (1000)")
    p.add_argument("--inflight-duration", type=int, default=10, help="seconds measured (10)")
    p.add_argument("--model-latency", type=float, default=1000, help="offline model ms (1000)")
    p.add_argument("--stampede", type=int, default=1000, help="identical requests (1000)")
    p.add_argument("--processes", type=int, default=3, help="servers sharing Redis (3)")
    p.add_argument("--output", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    args.parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    if not args.parts or set(args.parts) - set(PARTS):
        p.error(f"--parts: choose from {', '.join(PARTS)}")
    for name in (
        "duration",
        "connections",
        "inflight",
        "inflight_duration",
        "stampede",
        "processes",
    ):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # 1 000 connections on each side: children inherit the raised limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    return run_harness("resilience", lambda workdir, children: _run(args, workdir, children))


def _run(args: argparse.Namespace, workdir: Path, children: Children) -> int:
    run = Run(args, workdir, children)
    if {"cache", "ratelimit"} & set(args.parts):
        run.gen, how = choose(args.loadgen, 1, workdir)
        run.notes.append(
            f"REST load: {how}, {args.connections} connections, "
            f"{args.warmup} s warm-up + {args.duration} s"
        )
    cpus = [c for c in (run.server_cpu, run.load_cpu) if c is not None]
    pinning = (
        f"server on CPU {run.server_cpu}; load and Redis on CPU {run.load_cpu}"
        if cpus
        else "NOT pinned (fewer than 2 CPUs)"
    )
    busy = busy_cpus(cpus)
    run.notes.insert(
        0,
        pinning
        + "; busy before start: "
        + (", ".join(f"CPU {c} {s:.0%}" for c, s in busy.items()) or "-"),
    )
    parts: dict[str, Callable[[], str]] = {
        "cache": run.part_cache,
        "ratelimit": run.part_ratelimit,
        "inflight": run.part_inflight,
        "stampede": run.part_stampede,
    }
    tables = [parts[name]() for name in PARTS if name in args.parts]
    print("\n" + "\n\n".join(tables))
    print("\nnotes:\n" + "\n".join(f"* {n}" for n in run.notes))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"notes": run.notes, **run.out}, indent=2, default=str))
    print(f"\nresilience: results written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
