# SPDX-License-Identifier: Apache-2.0
"""The maintained gunicorn config (deploy/gunicorn.conf.py) really serves and drains, and
its workers count into one ``/metrics`` in a directory the master removes at exit."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.test_metrics_workers import RUN_DIRS, spread_requests
from tests.support.metrics import (
    ACTIVE_REQUESTS,
    REQUEST_COUNT,
    scrape,
    total,
    wait_for_access_lines,
)
from tests.support.server import ServerProcess, app_env, free_port

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "gunicorn.conf.py"


def test_gunicorn_config_serves_without_server_header_counts_once_and_drains(
    tmp_path: Path,
) -> None:
    port = free_port()
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = app_env(
        {
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "WORKERS": "2",
            "SHUTDOWN_GRACE": "3",
            "TMPDIR": str(temp),
        }
    )
    gunicorn = Path(sys.executable).parent / "gunicorn"
    log = (tmp_path / "gunicorn.log").open("wb")
    proc = subprocess.Popen(
        [str(gunicorn), "-c", str(CONFIG)], cwd=tmp_path, env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "gunicorn.log").read_text()
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                if r.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
            time.sleep(0.2)
        # Both workers finished their start-up (the drain hook is installed there).
        while (tmp_path / "gunicorn.log").read_text().count('"using_offline_model"') < 2:
            assert time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
            time.sleep(0.2)
        joke = httpx.post(f"http://127.0.0.1:{port}/tell-joke", json={}, timeout=10)
        assert joke.status_code == 200
        assert "server" not in joke.headers
        # Forked workers write to the directory the master made before forking them.
        run_dirs = list(temp.glob(RUN_DIRS))
        master = ServerProcess(proc, port, tmp_path / "gunicorn.log")
        sent, _ = spread_requests(master, "/ready", minimum=10)
        wait_for_access_lines(master.log_text, "/ready", sent)
        families = scrape(master.base_url)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        log.close()
    text = (tmp_path / "gunicorn.log").read_text()
    assert code == 0, text[-3000:]
    assert text.count('"shutdown_started"') == 2
    assert total(families, REQUEST_COUNT, http_route="/ready") == sent
    assert total(families, ACTIVE_REQUESTS) == 1  # the scrape itself
    assert len(run_dirs) == 1, run_dirs
    assert not list(temp.glob(RUN_DIRS))  # removed by the master's on_exit


def test_a_bad_setting_stops_gunicorn_with_one_line(tmp_path: Path) -> None:
    env = app_env({"PORT": str(free_port()), "WORKERS": "many"})
    gunicorn = Path(sys.executable).parent / "gunicorn"
    done = subprocess.run(
        [str(gunicorn), "-c", str(CONFIG)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "WORKERS" in lines[0]
    assert "Traceback" not in done.stderr
