"""The two apps under test: how each is started, and what each must answer.

Both are started the same way — the venv's Python directly (not ``uv run``, whose own
start-up would be counted as ours), pinned to the server core, in an empty working
directory and without any of our settings in the environment — so the only difference
between them is the code that serves the requests.
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
from _proc import BenchError, Children, free_port, http_request, wait_healthy

BENCH_DIR = Path(__file__).resolve().parent
START_TIMEOUT = 30.0
JOKE_BODY = b'{"name":"Mittens"}'
TARGETS = (
    Target("GET /health", "GET", "/health"),
    Target("POST /tell-joke", "POST", "/tell-joke", JOKE_BODY),
)
APPS = ("bare", "ours")


def app_argv(name: str, port: int) -> list[str]:
    if name == "bare":
        return [sys.executable, str(BENCH_DIR / "bare_app.py"), "--port", str(port)]
    if name == "ours":
        return [sys.executable, "-m", "endpoints_hello", "--host", "127.0.0.1", "--port", str(port)]
    raise ValueError(f"unknown app {name!r}")


def server_env() -> dict[str, str]:
    """This environment minus every setting of ours, plus quiet JSON logs.

    A provider key or ``OFFLINE_*_DELAY`` in a developer's shell would otherwise change
    what is measured; the brief is the offline model with zero latency.
    """
    from endpoints_hello.settings import Settings

    ours = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in ours}
    return {**env, "LOG_LEVEL": "warning", "LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"}


@dataclass(frozen=True)
class Server:
    name: str
    port: int
    pid: int
    startup_s: float  # spawn to the first 200 on /health


@contextlib.contextmanager
def serve(
    name: str, *, children: Children, cpu: int | None, env: dict[str, str], workdir: Path
) -> Iterator[Server]:
    """Start app ``name`` pinned to ``cpu``; it is stopped when the block ends, however."""
    port = free_port()
    log = workdir / f"{name}-{port}.log"
    with log.open("w") as out:
        began = time.perf_counter()
        proc = children.spawn(
            app_argv(name, port),
            cpu=cpu,
            env=env,
            cwd=workdir,  # no stray .env file applies
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            startup = wait_healthy(proc, port, started=began, timeout=START_TIMEOUT, log=log)
            yield Server(name, port, proc.pid, startup)
            if proc.poll() is not None:
                raise BenchError(f"{name} exited with {proc.returncode} during the run")
        finally:
            children.stop(proc)


def check_answers(server: Server) -> None:
    """Fail loudly unless both routes answer 200 with the expected JSON."""
    name, port = server.name, server.port
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
        or doc["username"] is not None
    ):
        raise BenchError(f"{name}: POST /tell-joke gave {status} {ctype} {body[:200]!r}")


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:
        return None
