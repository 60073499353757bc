# SPDX-License-Identifier: Apache-2.0
"""Start the real app as a separate process on a free loopback port, and stop it.

End-to-end tests talk to it over sockets only. The process's log (stderr, JSON lines)
is kept in a file so tests can assert on what the server logged.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

# Variables from the developer's shell must not leak into the process under test.
_SCRUB = (
    "GEMINI_API_KEY",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "MODEL",
    "GENKIT_ENV",
    "DEBUG",
    "REDIS_URL",  # a server under test uses Redis only when its test says so
    # Nor does it report to a developer's Sentry or append to their audit file.
    "SENTRY_DSN",
    "SENTRY_ENVIRONMENT",
    "SENTRY_RELEASE",
    "AUDIT_LOG",
)


# What a server may spend starting, counted in CPU seconds of its process tree rather
# than in wall-clock time: on a busy machine a start-up takes longer on the clock but
# not in CPU, so a budget in CPU time neither fails a healthy start on a loaded machine
# nor, on an idle one, lets a spinning start-up run for minutes. Every server's main
# process imports the app and Genkit; granian then starts worker processes that import
# all of it again before serving, so its start-up costs two imports and gets twice the
# budget. With ``--workers N`` every worker imports it all, so the budget is N times
# that. A start-up that uses no CPU at all for STALL_LIMIT seconds is hung (a deadlock,
# a blocked read): a runnable process gets some CPU within that however busy the
# machine is.
STARTUP_BUDGET = {"uvicorn": 15.0, "hypercorn": 15.0, "granian": 30.0}
STALL_LIMIT = 20.0
DEFAULT_SERVER = "uvicorn"  # the CLI's default when neither --server nor SERVER is given
SAMPLE_APP = ("-m", "endpoints_hello")
_PORT_ATTEMPTS = 3  # a free port may be taken by another process before the server binds


def startup_budget(args: Sequence[str], env: Mapping[str, str] | None = None) -> float:
    """The start-up CPU budget of the server and worker count ``args`` (else ``env``'s
    SERVER and WORKERS) select."""
    server = (env or {}).get("SERVER", DEFAULT_SERVER)
    workers = (env or {}).get("WORKERS", "1")
    for i, arg in enumerate(args):
        if arg in ("--server", "--workers") and i + 1 < len(args):
            if arg == "--server":
                server = args[i + 1]
            else:
                workers = args[i + 1]
        elif arg.startswith("--server="):
            server = arg.partition("=")[2]
        elif arg.startswith("--workers="):
            workers = arg.partition("=")[2]
    return STARTUP_BUDGET[server] * max(1, int(workers))


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by ``pid`` and its descendants, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    seen: set[int] = set()
    while todo and len(seen) < 256:  # bounded: a server has a handful of processes
        current = todo.pop()
        seen.add(current)
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError, IndexError):
            continue  # it exited meanwhile
    return total


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=kwargs.pop("timeout", 30), **kwargs)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log_text().splitlines():
            with contextlib.suppress(ValueError):
                obj = json.loads(line)
                if isinstance(obj, dict):
                    events.append(obj)
        return events

    def wait_for_log(self, event: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.log_events():
                if e.get("event") == event:
                    return e
            time.sleep(0.05)
        raise AssertionError(f"event {event!r} not logged within {timeout}s:\n{self.log_text()}")

    @property
    def grpc_port(self) -> int:
        return int(self.wait_for_log("grpc_server_started")["port"])

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            raise


def app_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    # OpenTelemetry's variables too: a developer's collector must not receive test traces,
    # and tracing is on only where a test turns it on.
    base = {k: v for k, v in os.environ.items() if k not in _SCRUB and not k.startswith("OTEL_")}
    base.setdefault("LOG_FORMAT", "json")
    # A free gRPC port per server: tests run in parallel and SO_REUSEPORT would let two
    # servers share 50051 (the port is read back from the `grpc_server_started` log).
    base.setdefault("GRPC_PORT", "0")
    # Suites send hundreds of requests from one address; the default 60/minute would
    # turn them into 429s. The limiter still runs; rate-limit tests set their own.
    base.setdefault("RATE_LIMIT_DEFAULT", "100000/minute")
    # Likewise, module-scoped servers see many scripted provider failures in a row; the
    # breaker would open and refuse later tests' calls. Breaker tests set their own.
    base.setdefault("CB_FAILURE_THRESHOLD", "10000")
    base["PYTHONUNBUFFERED"] = "1"
    base.update(env or {})
    return base


@contextlib.contextmanager
def run_server(
    tmp_path: Path,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    ready_timeout: float | None = None,
    app: Sequence[str] = SAMPLE_APP,
    probe: str = "/health",
    extra: Mapping[str, Any] | None = None,
) -> Iterator[ServerProcess]:
    """Start ``python <app> --host 127.0.0.1 --port <free> <args>`` (the sample app
    unless ``app`` names another module or script) and wait for ``probe`` to answer 200.

    The wait ends in failure when the server exits, spends its ``STARTUP_BUDGET`` of CPU,
    stalls, or (only if given) ``ready_timeout`` wall-clock seconds pass. A port that
    another process took meanwhile is retried on a new one.
    """
    for attempt in range(_PORT_ATTEMPTS):
        port = free_port()
        log_path = tmp_path / f"server-{port}.log"
        log = log_path.open("wb")
        cmd = [sys.executable, *app, "--host", "127.0.0.1", "--port", str(port), *args]
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=app_env(env), cwd=cwd or tmp_path
        )
        server = ServerProcess(proc, port, log_path, extra=dict(extra or {}))
        try:
            failure = _wait_healthy(server, startup_budget(args, env), ready_timeout, probe)
            if failure is None:
                yield server
                return
            lost_port = "Address already in use" in server.log_text()
            if not (lost_port and attempt + 1 < _PORT_ATTEMPTS):
                raise AssertionError(f"{failure}:\n{server.log_text()}")
        finally:
            with contextlib.suppress(Exception):
                server.terminate(timeout=15)
            log.close()


def _wait_healthy(
    server: ServerProcess, budget: float, wall_limit: float | None, probe: str = "/health"
) -> str | None:
    """None once ``probe`` answers 200; else why the start-up failed."""
    proc = server.proc
    started = progressed = time.monotonic()
    used = 0.0
    # One client for every poll: a new one per poll builds an SSL context each time, tens
    # of milliseconds of CPU, twenty times a second, while the server is starting.
    with httpx.Client(timeout=1) as client:
        while True:
            if proc.poll() is not None:
                return f"server exited with {proc.returncode}"
            with contextlib.suppress(httpx.TransportError):
                if client.get(server.base_url + probe).status_code == 200:
                    return None
            now = time.monotonic()
            cpu = cpu_seconds(proc.pid)
            if cpu > used:
                used, progressed = cpu, now
            if used > budget:
                return f"server not healthy after {used:.1f} CPU seconds (budget {budget})"
            if now - progressed > STALL_LIMIT:
                return f"server start-up stalled: no CPU used for {STALL_LIMIT}s"
            if wall_limit is not None and now - started > wall_limit:
                return f"server not healthy in {wall_limit}s"
            time.sleep(0.05)


def run_cli(
    args: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion (for flags that make it exit)."""
    return subprocess.run(
        [sys.executable, "-m", "endpoints_hello", *args],
        capture_output=True,
        text=True,
        env=app_env(env),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
