# SPDX-License-Identifier: Apache-2.0
"""Several worker processes serve as one service: to clients, to gRPC and to a scraper.

``--workers 2`` on every server: both workers answer HTTP (which process owns a
connection is read from ``/proc``), both bind the same gRPC port, a single scrape of
``/metrics`` — answered by whichever worker the kernel picks — counts every request
either of them served, and at SIGTERM both drain and the run's metrics directory goes.
A restarted service counts from zero even in a directory the operator chose and kept.
gunicorn's master keeps the same promises through ``deploy/gunicorn.conf.py``
(``test_gunicorn``, which uses ``spread_requests`` from here).

Starting a server with two workers costs two full imports of the app, so every check
about workers shares one start per server.
"""

from __future__ import annotations

import http.client
import signal
import time
from pathlib import Path

import grpc
import httpx
import pytest

from endpoints_hello.generated import genkit_sample_pb2 as pb
from endpoints_hello.generated import genkit_sample_pb2_grpc as pb_grpc
from tests.e2e.test_servers import owner, pid_alive
from tests.support.metrics import (
    ACTIVE_REQUESTS,
    REQUEST_COUNT,
    scrape,
    total,
    wait_for_access_lines,
)
from tests.support.server import ServerProcess, free_port, run_server

RUN_DIRS = "genkit-endpoints-metrics-*"  # what the CLI creates in TMPDIR for a run
ROUTE = "/ready"  # cheap, and nothing but these tests sends it (start-up probes /health)
REQUESTS = 20  # at least; more only until both workers have answered


def spread_requests(
    server: ServerProcess, path: str, *, minimum: int, workers: int = 2, timeout: float = 60
) -> tuple[int, set[int]]:
    """GET ``path`` on a new connection each time — the kernel picks the worker — until
    ``minimum`` were sent and ``workers`` processes answered; (requests sent, their pids)."""
    owners: set[int] = set()
    sent = 0
    deadline = time.monotonic() + timeout
    while (sent < minimum or len(owners) < workers) and sent < 10 * minimum:
        assert time.monotonic() < deadline, f"only {owners} answered {sent} requests"
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            conn.request("GET", path)
            conn.getresponse().read()
            sent += 1
            assert conn.sock is not None  # kept alive: the server's end is still open
            pid = owner(server, conn.sock)
        finally:
            conn.close()
        if pid is not None:
            owners.add(pid)
        if sent % 10 == 0 and len(owners) < workers:
            time.sleep(0.2)  # a worker still starting up catches up
    assert len(owners) == workers, f"only {owners} answered {sent} requests"
    return sent, owners


@pytest.mark.parametrize("server_name", ["uvicorn", "granian", "hypercorn"])
def test_two_workers_answer_as_one_service_and_leave_nothing_behind(
    tmp_path: Path, server_name: str
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    grpc_port = free_port()
    args = ["--server", server_name, "--workers", "2", "--grpc-port", str(grpc_port)]
    with run_server(tmp_path, args=args, env={"TMPDIR": str(temp)}) as server:
        run_dirs = list(temp.glob(RUN_DIRS))
        sent, owners = spread_requests(server, ROUTE, minimum=REQUESTS)
        wait_for_access_lines(server.log_text, ROUTE, sent)
        families = scrape(server.base_url)
        # Both workers bound the one gRPC port (SO_REUSEPORT) and answer on it.
        deadline = time.monotonic() + 60
        while True:
            started = [e for e in server.log_events() if e.get("event") == "grpc_server_started"]
            if len(started) == 2:
                break
            assert time.monotonic() < deadline, server.log_text()[-3000:]
            time.sleep(0.1)
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = pb_grpc.GenkitServiceStub(channel)
            assert stub.Health(pb.HealthRequest(), timeout=5).status == "ok"
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(timeout=30)
        events = server.log_events()
    # One scrape, served by one of the workers, holds both workers' requests.
    assert total(families, REQUEST_COUNT, http_route=ROUTE) == sent
    # In flight while it was taken: the scrape itself (the others' gauges are back at 0).
    assert total(families, ACTIVE_REQUESTS) == 1
    assert len(run_dirs) == 1, run_dirs
    assert {e["port"] for e in started} == {grpc_port}
    assert code == 0, server.log_text()[-3000:]
    # Every worker ran its drain hook, none outlived the server, and the run's metrics
    # directory went with it.
    assert sum(e.get("event") == "shutdown_started" for e in events) == 2
    assert not any(pid_alive(pid) for pid in owners)
    assert not list(temp.glob(RUN_DIRS))


def test_a_restart_counts_from_zero_in_the_operators_own_directory(tmp_path: Path) -> None:
    """``PROMETHEUS_MULTIPROC_DIR`` set by the operator is kept across runs (it may be a
    mounted volume), so the files a run leaves there must not count in the next one."""
    chosen = tmp_path / "metrics"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(chosen)}
    with run_server(tmp_path, args=["--no-grpc"], env=env) as first:
        for _ in range(3):
            assert httpx.get(first.base_url + ROUTE, timeout=10).status_code in (200, 503)
        wait_for_access_lines(first.log_text, ROUTE, 3)
        assert total(scrape(first.base_url), REQUEST_COUNT, http_route=ROUTE) == 3
        assert first.terminate() == 0
    assert list(chosen.glob("counter_*.db")), "the first run left no files to go stale"
    with run_server(tmp_path, args=["--no-grpc"], env=env) as second:
        assert total(scrape(second.base_url), REQUEST_COUNT, http_route=ROUTE) == 0
        assert httpx.get(second.base_url + ROUTE, timeout=10).status_code in (200, 503)
        wait_for_access_lines(second.log_text, ROUTE, 1)
        assert total(scrape(second.base_url), REQUEST_COUNT, http_route=ROUTE) == 1
        assert second.terminate() == 0
    assert chosen.is_dir()  # the operator's, not removed
