# SPDX-License-Identifier: Apache-2.0
"""Shutdown on every stack: in-flight work finishes, new connections are refused, and the
process exits 0 as soon as the work is done; work longer than SHUTDOWN_GRACE is cut at
the grace. The server owns the signal and the listener, the framework the lifespan and
the responses still streaming, so this contract holds per combination.

SIGTERM (what an orchestrator sends) drains the in-flight work on every stack; SIGINT
(Ctrl+C) cuts the over-long work on every stack: both signals reach the same drain on
each of them. The bounds on the clock sit far from both outcomes they tell apart, so a
busy machine cannot fail them.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import REPRESENTATIVE, stack_args
from tests.support.server import run_server

# Far above every bound below: a process that waited for it would fail them.
LONG_GRACE = "60"


def drain_in_flight(stack: tuple[str, str], tmp_path: Path, sig: int) -> None:
    # ~1.5 s per unary answer: first chunk after 600 ms, then 150 ms per chunk.
    env = {
        "OFFLINE_FIRST_CHUNK_DELAY": "600",
        "OFFLINE_CHUNK_DELAY": "150",
        "SHUTDOWN_GRACE": LONG_GRACE,
    }
    results: dict[str, httpx.Response] = {}
    with run_server(tmp_path, args=stack_args(stack), env=env) as server:

        def call() -> None:
            results["unary"] = httpx.post(server.base_url + "/tell-joke", json={}, timeout=30)

        unary = threading.Thread(target=call)
        unary.start()
        time.sleep(0.3)  # the unary request is in flight before the stream starts
        with (
            httpx.Client(base_url=server.base_url, timeout=30) as c,
            c.stream("POST", "/tell-story/stream", json={}) as stream,
        ):
            lines = stream.iter_lines()
            first = next(ln for ln in lines if ln.startswith("data:"))  # the stream is live
            server.proc.send_signal(sig)
            # The drain hook runs at the signal, in the serving process, while the
            # stream is still open — not at lifespan shutdown, after the drain.
            server.wait_for_log("shutdown_started", timeout=15)
            assert server.proc.poll() is None
            # New connections are refused while draining (the listener closes on the
            # server's next loop tick after the signal).
            assert refused_within(server.port, 15)
            rest = [ln for ln in lines if ln.startswith("data:")]
        done = time.monotonic()
        unary.join(timeout=30)
        code = server.proc.wait(timeout=45)
        exited_after = time.monotonic() - done
        log = server.log_text()
    assert code == 0, log
    # Once nothing is in flight the process leaves; it does not wait out the grace.
    assert exited_after < 30, log
    assert "unary" in results, log
    assert results["unary"].status_code == 200
    assert "joke" in results["unary"].json()
    assert first.startswith('data: {"chunk"')
    assert len(rest) >= 2, rest  # more frames came after the drain started
    assert rest[-1].startswith('data: {"done":true'), rest


def test_in_flight_request_and_stream_finish_then_exit_0(
    stack: tuple[str, str], tmp_path: Path
) -> None:
    drain_in_flight(stack, tmp_path, signal.SIGTERM)


def test_sigint_drains_in_flight_work_like_sigterm(tmp_path: Path) -> None:
    drain_in_flight(REPRESENTATIVE, tmp_path, signal.SIGINT)


def test_work_longer_than_the_grace_period_does_not_hold_the_process(
    stack: tuple[str, str], tmp_path: Path
) -> None:
    # A model call of two minutes against a grace of one second.
    env = {"OFFLINE_FIRST_CHUNK_DELAY": "120000", "SHUTDOWN_GRACE": "1"}
    with run_server(tmp_path, args=stack_args(stack), env=env) as server:
        threading.Thread(
            target=lambda: post_quietly(server.base_url + "/tell-joke"), daemon=True
        ).start()
        time.sleep(0.5)  # the request is in flight
        start = time.monotonic()
        server.proc.send_signal(signal.SIGINT)
        code = server.proc.wait(timeout=60)
        elapsed = time.monotonic() - start
        log = server.log_text()
    assert code == 0, log
    assert elapsed < 30, elapsed


def test_idle_server_exits_promptly(tmp_path: Path) -> None:
    """Nothing in flight: no wait for the grace. The signal path is the one above."""
    env = {"SHUTDOWN_GRACE": LONG_GRACE}
    with run_server(tmp_path, args=stack_args(REPRESENTATIVE), env=env) as server:
        start = time.monotonic()
        code = server.terminate()
        elapsed = time.monotonic() - start
    assert code == 0
    assert elapsed < 30


def post_quietly(url: str) -> None:
    # The server cuts the request at the grace: that is the point of the test.
    with contextlib.suppress(httpx.TransportError):
        httpx.post(url, json={}, timeout=150)


def refused_within(port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        except TimeoutError:
            continue  # a full backlog: not refused yet
        time.sleep(0.05)
    return False
