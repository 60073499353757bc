"""SIGTERM/SIGINT: in-flight work finishes within SHUTDOWN_GRACE, then exit 0."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.server import run_server


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_in_flight_request_and_stream_finish_then_exit_0(tmp_path: Path, sig: int) -> None:
    # ~1.5 s per unary answer: first chunk after 600 ms, then 150 ms per chunk.
    env = {"OFFLINE_FIRST_CHUNK_DELAY": "600", "OFFLINE_CHUNK_DELAY": "150", "SHUTDOWN_GRACE": "10"}
    results: dict[str, httpx.Response] = {}
    with run_server(tmp_path, env=env) as server:

        def call() -> None:
            results["unary"] = httpx.post(server.base_url + "/tell-joke", json={}, timeout=20)

        unary = threading.Thread(target=call)
        unary.start()
        time.sleep(0.3)
        with (
            httpx.Client(base_url=server.base_url, timeout=20) as c,
            c.stream("POST", "/tell-story/stream", json={}) as stream,
        ):
            lines = stream.iter_lines()
            first = next(ln for ln in lines if ln.startswith("data:"))  # the stream is live
            server.proc.send_signal(sig)
            server.wait_for_log("shutdown_started", timeout=5)
            time.sleep(0.2)
            # New connections are refused while draining.
            with pytest.raises(httpx.TransportError):
                httpx.get(server.base_url + "/health", timeout=1)
            rest = [ln for ln in lines if ln.startswith("data:")]
        unary.join(timeout=20)
        code = server.proc.wait(timeout=15)
        log = server.log_text()
    assert code == 0
    assert "unary" in results, log
    assert results["unary"].status_code == 200
    assert "joke" in results["unary"].json()
    assert first.startswith('data: {"chunk"')
    assert rest[-1].startswith('data: {"done":true')


def test_work_longer_than_the_grace_period_does_not_hold_the_process(tmp_path: Path) -> None:
    env = {"OFFLINE_FIRST_CHUNK_DELAY": "30000", "SHUTDOWN_GRACE": "1"}
    with run_server(tmp_path, env=env) as server:
        t = threading.Thread(
            target=lambda: httpx.post(server.base_url + "/tell-joke", json={}, timeout=40),
            daemon=True,
        )
        t.start()
        time.sleep(0.3)
        start = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(timeout=15)
        elapsed = time.monotonic() - start
    assert code == 0
    assert elapsed < 5, elapsed


def test_idle_server_exits_promptly(tmp_path: Path) -> None:
    with run_server(tmp_path) as server:
        start = time.monotonic()
        code = server.terminate()
        elapsed = time.monotonic() - start
    assert code == 0
    assert elapsed < 3
