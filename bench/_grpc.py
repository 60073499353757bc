# SPDX-License-Identifier: Apache-2.0
"""The gRPC suite: our full gRPC server and two ``grpc.aio`` baselines, started, checked, driven.

Ours is the real app process with gRPC enabled (interceptors, authentication, standard
health, drain; the REST side idles next to it on the same event loop), on the server
chosen with ``--grpc-server``. ``Health`` is compared with ``bench/bare_grpc.py`` (the
cost of our stack on a call that does nothing), ``TellJoke`` with ``bench/naive_grpc.py``
(a hand-written servicer around the same Genkit flow: the cost or saving of the kit on a
call that does the work). All are pinned to the server core; every gRPC client
(readiness probe, answer check, load) is ``bench/_grpcload.py`` in a child process on
the load core, so the harness itself never loads gRPC.
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

from _apps import BENCH_API_KEY, START_TIMEOUT, Server, app_argv, app_env, spawned
from _load import LoadResult, run_child
from _proc import BenchError, Children, free_port, log_tail, process_tree, wait_healthy

BENCH_DIR = Path(__file__).resolve().parent
HEALTH = "gRPC Health"  # labels of the measured RPCs in tables and JSON
TELL_JOKE = "gRPC TellJoke"
RPC_FLAG = {HEALTH: "health", TELL_JOKE: "joke"}  # _grpcload.py --rpc
# What each app is measured on: Health against the bare server, TellJoke against naive.
MEASURED = {"bare": (HEALTH,), "naive": (TELL_JOKE,), "ours": (HEALTH, TELL_JOKE)}
BASELINES = {"bare": "bare_grpc.py", "naive": "naive_grpc.py"}  # in bench/
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

    def _rpc(self, endpoint: str) -> list[str]:
        # Only TellJoke needs the key (ours exempts Health, as /health on REST); the
        # baselines get it too, and ignore it, as on REST.
        key = [f"--api-key={BENCH_API_KEY}"] if endpoint == TELL_JOKE else []
        return [f"--rpc={RPC_FLAG[endpoint]}", *key]

    def check(self, server: Server, endpoint: str) -> None:
        """The answer must be right; ours must echo a request id (its interceptors ran).

        Health says ok. TellJoke has a joke, and the username is the API key's name for
        ours (the principal wins, as on REST), empty for naive (no name was sent).
        """
        doc = self._call(server.port, "--check", *self._rpc(endpoint), timeout=30)
        ours = server.name == "ours"
        if endpoint == HEALTH:
            right = doc.get("status") == "ok"
        else:
            joke, username = doc.get("joke"), doc.get("username")
            right = isinstance(joke, str) and bool(joke) and username == ("bench" if ours else "")
        if not right or ours != bool(doc.get("request_id")):
            raise BenchError(f"{server.label}: {endpoint} gave {doc}")

    def load(self, port: int, endpoint: str, *, concurrency: int, duration: int) -> LoadResult:
        doc = self._call(
            port,
            *self._rpc(endpoint),
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
    """Start ``ours`` on ``server`` with gRPC, or a baseline gRPC server; yield once it answers."""
    grpc_port = free_port()
    log = workdir / f"grpc-{name}-{grpc_port}.log"
    if name == "ours":
        env = app_env(name, env)
        rest_port = free_port()
        argv = app_argv("ours", server, rest_port, grpc_port)
        where = server
    elif name in BASELINES:
        argv = [sys.executable, str(BENCH_DIR / BASELINES[name]), f"--port={grpc_port}"]
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
