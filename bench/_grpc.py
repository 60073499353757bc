"""The gRPC suite: our full gRPC server and a bare ``grpc.aio`` one, started, checked, driven.

Ours is the real app process with gRPC enabled (interceptors, standard health, drain; the
REST side idles next to it on the same event loop), on the server chosen with
``--grpc-server``. The baseline is ``bench/bare_grpc.py``. Both are pinned to the server
core; every gRPC client (readiness probe, answer check, load) is ``bench/_grpcload.py``
in a child process on the load core, so the harness itself never loads gRPC.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

from _apps import START_TIMEOUT, Server, app_argv, app_env, spawned
from _load import LoadResult, run_child
from _proc import BenchError, Children, free_port, log_tail, process_tree, wait_healthy

BENCH_DIR = Path(__file__).resolve().parent
ENDPOINT = "gRPC Health"  # the label of the one measured RPC in tables and JSON
CLIENT = str(BENCH_DIR / "_grpcload.py")
_RESULT_FIELDS = {f.name for f in fields(LoadResult)}


class GrpcClient:
    """Runs ``_grpcload.py`` pinned to the load core, in the servers' environment."""

    def __init__(self, children: Children, cpu: int | None, env: dict[str, str]) -> None:
        self.children = children
        self.cpu = cpu
        self.env = env

    def _call(self, port: int, *args: str, timeout: float) -> dict[str, Any]:
        argv = [sys.executable, CLIENT, f"--port={port}", *args]
        out = run_child(self.children, argv, self.cpu, timeout=timeout, env=self.env)
        try:
            doc = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError) as exc:
            raise BenchError(f"unreadable output from the gRPC client: {out!r}") from exc
        if not isinstance(doc, dict):
            raise BenchError(f"unreadable output from the gRPC client: {out!r}")
        return doc

    def wait_ready(self, port: int, timeout: float, log: Path) -> None:
        doc = self._call(port, f"--wait={timeout}", timeout=timeout + 15)
        if "error" in doc:
            raise BenchError(f"gRPC on port {port}: {doc['error']}:\n{log_tail(log)}")

    def check(self, server: Server) -> None:
        """Health must say ok; ours must echo a request id (its interceptors ran), bare not."""
        doc = self._call(server.port, "--check", timeout=30)
        rid = doc.get("request_id")
        if doc.get("status") != "ok" or (server.name == "ours") != bool(rid):
            raise BenchError(f"{server.label}: gRPC Health gave {doc}")

    def load(self, port: int, *, concurrency: int, duration: int) -> LoadResult:
        doc = self._call(
            port,
            f"--concurrency={concurrency}",
            f"--duration={duration}",
            timeout=duration + 30,
        )
        errors = {k: v for k, v in doc.get("errors", {}).items() if k != "DEADLINE_EXCEEDED"}
        if errors:
            raise BenchError(f"gRPC calls failed under load: {errors}")
        try:
            return LoadResult(**{k: v for k, v in doc.items() if k in _RESULT_FIELDS})
        except TypeError as exc:
            raise BenchError(f"unreadable output from the gRPC client: {doc}") from exc


@contextlib.contextmanager
def serve_grpc(
    name: str,
    server: str,
    *,
    client: GrpcClient,
    children: Children,
    cpu: int | None,
    env: dict[str, str],
    workdir: Path,
) -> Iterator[Server]:
    """Start ``ours`` on ``server`` with gRPC, or the bare gRPC server; yield once it answers."""
    grpc_port = free_port()
    log = workdir / f"grpc-{name}-{grpc_port}.log"
    if name == "ours":
        env = app_env(name, env)
        rest_port = free_port()
        argv = app_argv("ours", server, rest_port, grpc_port)
        where = server
    elif name == "bare":
        argv = [sys.executable, str(BENCH_DIR / "bare_grpc.py"), f"--port={grpc_port}"]
        where = "grpc.aio"
    else:
        raise ValueError(f"unknown app {name!r}")
    with spawned(argv, log, what=f"{name} gRPC", children=children, cpu=cpu, env=env) as (
        proc,
        began,
    ):
        if name == "ours":
            # gRPC starts in the lifespan, before REST accepts: REST up means gRPC bound.
            wait_healthy(proc, rest_port, started=began, timeout=START_TIMEOUT, log=log)
        client.wait_ready(grpc_port, START_TIMEOUT, log)
        startup = time.perf_counter() - began
        yield Server(name, where, grpc_port, proc.pid, startup, len(process_tree(proc.pid)))
