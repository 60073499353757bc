# SPDX-License-Identifier: Apache-2.0
"""A small process supervisor that forwards SIGTERM/SIGINT to its workers.

For servers whose own multi-process mode keeps the signal away from the workers:
hypercorn's ``run`` tells its workers to stop through a shared event they poll, so a
worker never sees the signal and the app's drain hook cannot run at the first signal.
Here every worker receives the signal itself and drains on its own deadline; the
supervisor only waits, kills a worker still running after ``stop_timeout``, and
reports success (0) when every worker stopped cleanly. A worker that dies on its own
stops the service (exit 1): the orchestrator restarts the whole unit.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import structlog

_log = structlog.get_logger(__name__)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def supervise(
    target: Callable[..., None],
    args: tuple[Any, ...],
    workers: int,
    stop_timeout: float,
    after_start: Callable[[], None] | None = None,
) -> int:
    """Run ``target(*args)`` in ``workers`` spawned processes until a signal; the exit code.

    ``after_start`` runs once every worker holds what it inherited (e.g. to close the
    supervisor's copy of the listening socket, so it is refused once workers close theirs).
    """
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters, nothing half-copied
    procs: list[BaseProcess] = []
    received: list[int] = []

    def forward(sig: int, _: FrameType | None) -> None:
        received.append(sig)
        for proc in procs:
            if proc.pid is not None and proc.exitcode is None:
                os.kill(proc.pid, sig)

    previous = {sig: signal.signal(sig, forward) for sig in STOP_SIGNALS}
    failed = False
    try:
        for idx in range(workers):
            proc = ctx.Process(target=target, args=args, name=f"worker-{idx + 1}")
            proc.start()
            procs.append(proc)
            _log.info("worker_started", worker=idx + 1, pid=proc.pid)
        if after_start is not None:
            after_start()
        if received:  # a signal during start-up reached only the workers started by then
            forward(received[-1], None)
        while not received:
            # A signal handled during the wait also ends it, with workers that exited
            # because of it: only an exit without a signal is unexpected.
            if wait([p.sentinel for p in procs], timeout=0.5) and not received:
                failed = True
                _log.error("worker_exited_unexpectedly", codes=[p.exitcode for p in procs])
                forward(signal.SIGTERM, None)
        failed = _join(procs, stop_timeout, set(received)) or failed
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if failed else 0


def _join(procs: list[BaseProcess], timeout: float, sent: set[int]) -> bool:
    """Wait for every worker until the deadline, then kill; True when one did not stop cleanly."""
    # A worker still importing when the signal came dies of it (default action) before
    # it served anything: that is a clean stop too.
    clean = {0} | {-sig for sig in sent}
    deadline = time.monotonic() + timeout
    failed = False
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.exitcode is None:
            _log.error("worker_killed_after_deadline", pid=proc.pid, timeout=timeout)
            proc.kill()
            proc.join()
            failed = True
        elif proc.exitcode not in clean:
            failed = True
    return failed
