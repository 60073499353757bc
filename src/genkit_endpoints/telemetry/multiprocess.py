# SPDX-License-Identifier: Apache-2.0
"""The per-run directory of Prometheus multiprocess mode, owned by the process that starts
the workers.

Worker processes write their metric values to files in ``PROMETHEUS_MULTIPROC_DIR``; a
scrape of any worker sums them. Files left by an earlier run would be summed too (a
restarted service would not start from zero), and gauge files of a dead worker would
keep counting it as alive. So the supervising process — the CLI before it starts a
server with several workers, gunicorn's master through ``genkit_endpoints.serving.gunicorn``
— gives every run a fresh directory and removes it at exit, and each worker marks its
own gauge files dead when it stops.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from genkit_endpoints.telemetry.metrics import MULTIPROC_ENV

__all__ = ["metrics_run_dir", "start_run_dir", "stop_run_dir", "worker_stopped"]

_PREFIX = "genkit-endpoints-metrics-"


def start_run_dir() -> tuple[str, bool]:
    """Set ``PROMETHEUS_MULTIPROC_DIR`` for the workers about to start: (path, created).

    A directory the operator chose (the variable already set) is kept but emptied of an
    earlier run's files; otherwise a new one is made under the temporary directory
    (``TMPDIR``: a writable volume when the root filesystem is read-only).
    """
    chosen = os.environ.get(MULTIPROC_ENV)
    if chosen:
        path = Path(chosen)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
        return str(path), False
    made = tempfile.mkdtemp(prefix=_PREFIX)
    os.environ[MULTIPROC_ENV] = made
    return made, True


def stop_run_dir(path: str, created: bool) -> None:
    """Remove a directory ``start_run_dir`` made (an operator's own is left in place)."""
    if created:
        shutil.rmtree(path, ignore_errors=True)
        if os.environ.get(MULTIPROC_ENV) == path:
            del os.environ[MULTIPROC_ENV]


@contextlib.contextmanager
def metrics_run_dir() -> Iterator[str]:
    """``start_run_dir`` … ``stop_run_dir`` around serving with several workers."""
    path, created = start_run_dir()
    try:
        yield path
    finally:
        stop_run_dir(path, created)


def worker_stopped(pid: int | None = None) -> None:
    """Drop the live gauges of worker ``pid`` (default: this process) from later scrapes."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path or not Path(path).is_dir():
        return
    from prometheus_client import multiprocess  # noqa: PLC0415

    multiprocess.mark_process_dead(pid if pid is not None else os.getpid(), path)  # type: ignore[no-untyped-call]
