# SPDX-License-Identifier: Apache-2.0
"""The apps under test: how each is started on each server, and what each must answer.

Every app is started the same way — the venv's Python directly (not ``uv run``, whose
own start-up would be counted as ours), pinned to the server core, in an empty working
directory and without any of our settings in the environment — so the only difference
between bare, naive and ours on one server is the code that serves the requests. The
gRPC suite's processes are started in ``_grpc``; this module starts the REST ones.

The apps: ``bare`` (``bare_app.py``, plain FastAPI, no Genkit), ``naive``
(``naive_app.py``, plain FastAPI calling the same Genkit flow as ours, written by hand
the way Genkit's documentation shows, no policies) and ``ours`` (the sample app on the
kit, with the production security settings).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from _load import JSON_HEADERS, Target
from _proc import BenchError, Children, free_port, http_request, process_tree, wait_healthy

BENCH_DIR = Path(__file__).resolve().parent
START_TIMEOUT = 30.0
JOKE_BODY = b'{"name":"Mittens"}'
TARGETS = (
    Target("GET /health", "GET", "/health"),
    Target("POST /tell-joke", "POST", "/tell-joke", JOKE_BODY),
)
APPS = ("bare", "naive", "ours")
SERVERS = ("uvicorn", "granian", "hypercorn")
BASELINE_SCRIPTS = {"bare": "bare_app.py", "naive": "naive_app.py"}  # REST, in bench/


def app_argv(name: str, server: str, port: int, grpc_port: int | None = None) -> list[str]:
    """The command line of app ``name`` on ``server``; ours serves gRPC iff ``grpc_port``."""
    if name in BASELINE_SCRIPTS:
        return [
            sys.executable,
            str(BENCH_DIR / BASELINE_SCRIPTS[name]),
            f"--server={server}",
            f"--port={port}",
        ]
    if name == "ours":
        argv = [
            sys.executable,
            "-m",
            "endpoints_hello",
            "--host=127.0.0.1",
            f"--port={port}",
            f"--server={server}",
        ]
        return [*argv, f"--grpc-port={grpc_port}"] if grpc_port else [*argv, "--no-grpc"]
    raise ValueError(f"unknown app {name!r}")


def server_env() -> dict[str, str]:
    """This environment minus every setting of ours, plus quiet JSON logs.

    A provider key or ``OFFLINE_*_DELAY`` in a developer's shell would otherwise change
    what is measured; the brief is the offline model with zero latency.
    """
    from genkit_endpoints import Settings

    ours = set(Settings.variable_names())
    env = {k: v for k, v in os.environ.items() if k.upper() not in ours}
    return {**env, "LOG_LEVEL": "warning", "LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"}


# Ours runs as a locked-down production deployment would, with the full security stack:
# API keys, CORS, trusted hosts and proxies configured, the access log on. The bare and
# naive apps get the same requests (the key header included) and ignore them.
BENCH_API_KEY = "bench-key-0123456789abcdef"
SECURED_ENV = {
    "API_KEYS": f"bench:{BENCH_API_KEY}",
    "CORS_ALLOWED_ORIGINS": "https://app.example",
    "TRUSTED_HOSTS": "127.0.0.1,localhost",
    "TRUSTED_PROXIES": "10.0.0.0/8",
    "LOG_LEVEL": "info",
    # Rate limiting on, high enough never to refuse the load generator; the O(1) strategy
    # (moving-window keeps one entry per request in the window: fine at 60/minute, not
    # at millions — see docs/configuration.md).
    "RATE_LIMIT_DEFAULT": "100000000/minute",
    "RATE_LIMIT_STRATEGY": "sliding-window-counter",
}


def app_env(name: str, base: dict[str, str]) -> dict[str, str]:
    """The environment app ``name`` runs with: ours adds the production security settings.

    The baselines get none: the naive app stands for code written without the kit, which
    has no such settings to read.
    """
    return {**base, **SECURED_ENV} if name == "ours" else base


@dataclass(frozen=True)
class Server:
    name: str  # "bare", "naive" or "ours"
    server: str  # uvicorn, granian, hypercorn; "grpc.aio" for the bare gRPC server
    port: int  # the port under load: REST, or gRPC in the gRPC suite
    pid: int  # the process we started; its CPU is measured with all its descendants
    startup_s: float  # spawn to the first 200 on /health (gRPC: to the first OK Health)
    processes: int  # processes in the tree once serving (granian: supervisor + worker + …)

    @property
    def label(self) -> str:
        return f"{self.name} on {self.server}"


@contextlib.contextmanager
def spawned(
    argv: list[str],
    log: Path,
    *,
    what: str,
    children: Children,
    cpu: int | None,
    env: dict[str, str],
) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """(process, perf_counter at spawn); the process is stopped when the block ends, however."""
    with log.open("w") as out:
        began = time.perf_counter()
        proc = children.spawn(
            argv,
            cpu=cpu,
            env=env,
            cwd=log.parent,  # an empty directory: no stray .env file applies
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc, began
            if proc.poll() is not None:
                raise BenchError(f"{what} exited with {proc.returncode} during the run")
        finally:
            children.stop(proc)


@contextlib.contextmanager
def serve(
    name: str,
    server: str,
    *,
    children: Children,
    cpu: int | None,
    env: dict[str, str],
    workdir: Path,
    grpc_port: int | None = None,
) -> Iterator[Server]:
    """Start app ``name`` on ``server`` pinned to ``cpu``; serving once /health is 200."""
    port = free_port()
    log = workdir / f"{name}-{server}-{port}.log"
    argv = app_argv(name, server, port, grpc_port)
    what = f"{name} on {server}"
    env = app_env(name, env)
    with spawned(argv, log, what=what, children=children, cpu=cpu, env=env) as (proc, began):
        startup = wait_healthy(proc, port, started=began, timeout=START_TIMEOUT, log=log)
        yield Server(name, server, port, proc.pid, startup, len(process_tree(proc.pid)))


def check_answers(server: Server) -> None:
    """Fail loudly unless both routes answer 200 with the expected JSON.

    ``username`` is the API key's name for ours (``SECURED_ENV``: the principal wins over
    the body), and the body's (absent, so null) for the baselines, which know no keys.
    """
    name, port = server.label, server.port
    status, _, body = http_request(port, "GET", "/health")
    if status != 200 or _json(body) != {"status": "ok"}:
        raise BenchError(f"{name}: GET /health gave {status} {body[:200]!r}")
    status, ctype, body = http_request(
        port, "POST", "/tell-joke", body=JOKE_BODY, headers=JSON_HEADERS
    )
    doc = _json(body)
    if (
        status != 200
        or not (ctype or "").startswith("application/json")
        or not isinstance(doc, dict)
        or set(doc) != {"joke", "username"}
        or not isinstance(doc["joke"], str)
        or not doc["joke"]
        or doc["username"] != ("bench" if server.name == "ours" else None)
    ):
        raise BenchError(f"{name}: POST /tell-joke gave {status} {ctype} {body[:200]!r}")


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:
        return None
