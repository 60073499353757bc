# SPDX-License-Identifier: Apache-2.0
"""The Prometheus multiprocess directory of a run, and gunicorn's master hooks for it.

Metric files are written by a real worker-like process (``PrometheusMetrics`` with the
variable set before ``prometheus_client`` is imported, as in a worker) and read back
with ``prometheus_client``'s own multiprocess collector, as a scrape would.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from genkit_endpoints import (
    gunicorn_metrics_start,
    gunicorn_metrics_stop,
    gunicorn_metrics_worker_exit,
)
from genkit_endpoints.telemetry.metrics import MULTIPROC_ENV
from genkit_endpoints.telemetry.multiprocess import metrics_run_dir, start_run_dir, stop_run_dir

# One request, in flight and finished, by a process of its own; prints its pid.
_WORKER = (
    "import os\n"
    "from genkit_endpoints.telemetry.metrics import PrometheusMetrics\n"
    "m = PrometheusMetrics()\n"
    "m.http_started()\n"
    "m.http_finished('GET', '/ready', 200, 0.01)\n"
    "m.http_started()\n"  # still in flight when the process ends without a clean stop
    "print(os.getpid())\n"
)


def run_worker(directory: str) -> int:
    env = {**os.environ, MULTIPROC_ENV: directory}
    done = subprocess.run(
        [sys.executable, "-c", _WORKER],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout.strip())


def scraped(directory: str) -> dict[str, float]:
    """Sample name → value summed over the series, as one scrape of the directory."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    out: dict[str, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No directory chosen by the environment; new ones are made under ``tmp_path``."""
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    yield tmp_path
    os.environ.pop(MULTIPROC_ENV, None)


def test_a_run_gets_a_fresh_directory_that_goes_when_it_ends(clean_env: Path) -> None:
    with metrics_run_dir() as path:
        assert os.environ[MULTIPROC_ENV] == path
        assert Path(path).parent == clean_env
        run_worker(path)
        run_worker(path)
        assert scraped(path)["http_server_request_duration_seconds_count"] == 2
    assert not Path(path).exists()
    assert MULTIPROC_ENV not in os.environ


def test_the_operators_directory_is_emptied_at_start_and_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    chosen = tmp_path / "volume"
    monkeypatch.setenv(MULTIPROC_ENV, str(chosen))
    with metrics_run_dir() as path:
        assert path == str(chosen)
        run_worker(path)
    assert chosen.is_dir()
    assert scraped(str(chosen))["http_server_request_duration_seconds_count"] == 1
    unrelated = chosen / "notes.txt"
    unrelated.write_text("not a metrics file")
    path, created = start_run_dir()  # the next run
    assert not created
    assert "http_server_request_duration_seconds_count" not in scraped(path)
    assert unrelated.exists()
    stop_run_dir(path, created)
    assert chosen.is_dir()


def test_gunicorn_hooks_drop_a_dead_workers_live_gauges_and_remove_the_directory(
    clean_env: Path,
) -> None:
    path = gunicorn_metrics_start()
    try:
        assert gunicorn_metrics_start() == path  # on a config reload: the same run
        assert os.environ[MULTIPROC_ENV] == path
        pid = run_worker(path)
        # The worker died with a request in flight: the gauge still says so...
        assert scraped(path)["http_server_active_requests"] == 1
        gunicorn_metrics_worker_exit(pid)
        after = scraped(path)
        # ...until the master reaped it; what it counted stays.
        assert after.get("http_server_active_requests", 0) == 0
        assert after["http_server_request_duration_seconds_count"] == 1
        # A forked worker exiting runs the inherited exit handler: it must not remove
        # the master's directory.
        child = multiprocessing.get_context("fork").Process(target=gunicorn_metrics_stop)
        child.start()
        child.join(30)
        assert child.exitcode == 0
        assert Path(path).is_dir()
    finally:
        gunicorn_metrics_stop()
    assert not Path(path).exists()
    assert MULTIPROC_ENV not in os.environ
    gunicorn_metrics_stop()  # on_exit, then the exit handler: the second does nothing
