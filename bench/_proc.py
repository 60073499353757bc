"""Child processes of the benchmark: spawned pinned to a core, always stopped.

Every process goes through one ``Children`` registry so that an error, Ctrl-C or
SIGTERM in the harness still ends each of them: SIGTERM first (uvicorn drains), then
SIGKILL after a bounded wait. Children run in their own session, so a Ctrl-C in the
terminal reaches only the harness, which then stops them in order.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

LOCALHOST = "127.0.0.1"


class BenchError(RuntimeError):
    """Something broke: the run is not valid and the harness exits non-zero."""


def free_port() -> int:
    """A port that was free a moment ago (fresh per server, so no TIME_WAIT carry-over)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        port: int = s.getsockname()[1]
        return port


def bench_cpus() -> tuple[int | None, int | None]:
    """(server CPU, load generator CPU), or (None, None) when fewer than two are allowed."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by a process, all threads (10 ms resolution)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name is in parentheses and may hold spaces; fields follow the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def _cpu_ticks() -> dict[str, tuple[int, int]]:
    """{"cpuN": (busy, total)} from /proc/stat."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(v) for v in values[:8]]
            idle = ticks[3] + ticks[4]  # idle + iowait
            out[name] = (sum(ticks) - idle, sum(ticks))
    return out


def busy_cpus(cpus: Sequence[int], seconds: float = 1.0) -> dict[int, float]:
    """Share of each CPU in ``cpus`` that other processes kept busy over ``seconds``."""
    before = _cpu_ticks()
    time.sleep(seconds)
    after = _cpu_ticks()
    shares = {}
    for cpu in cpus:
        key = f"cpu{cpu}"
        if key in before and key in after:
            busy = after[key][0] - before[key][0]
            total = after[key][1] - before[key][1]
            shares[cpu] = busy / total if total else 0.0
    return shares


def _pin(argv: Sequence[str], cpu: int | None) -> tuple[list[str], Callable[[], None] | None]:
    if cpu is None:
        return list(argv), None
    taskset = shutil.which("taskset")
    if taskset is not None:
        # taskset execs the command, so the pid we hold is the server's own.
        return [taskset, "-c", str(cpu), *argv], None

    def pin() -> None:
        os.sched_setaffinity(0, {cpu})

    return list(argv), pin


class Children:
    """Registry of every process the harness started."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[Any]] = []

    def spawn(
        self,
        argv: Sequence[str],
        *,
        cpu: int | None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stdout: IO[Any] | int | None = None,
        stderr: IO[Any] | int | None = None,
    ) -> subprocess.Popen[Any]:
        cmd, preexec = _pin(argv, cpu)
        proc = subprocess.Popen(
            cmd,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            # Only used without taskset; the harness is single-threaded when it spawns.
            preexec_fn=preexec,  # noqa: PLW1509
        )
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
        """SIGTERM, wait at most ``grace`` seconds, then SIGKILL (also bounded)."""
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        finally:
            if proc in self._procs:
                self._procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self._procs):
            try:
                self.stop(proc, grace=5.0)
            except (OSError, subprocess.TimeoutExpired) as exc:
                print(f"bench: could not stop pid {proc.pid}: {exc}")


def http_request(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, str | None, bytes]:
    """(status, content-type, body) of one request on a fresh connection."""
    conn = http.client.HTTPConnection(LOCALHOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        return resp.status, resp.getheader("content-type"), resp.read()
    finally:
        conn.close()


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def wait_healthy(
    proc: subprocess.Popen[Any],
    port: int,
    *,
    started: float,
    timeout: float,
    log: Path,
    interval: float = 0.01,
) -> float:
    """Seconds from ``started`` (a ``perf_counter`` value) to the first 200 on /health."""
    deadline = started + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise BenchError(
                f"server exited with {proc.returncode} before /health answered:\n{log_tail(log)}"
            )
        try:
            status, _, _ = http_request(port, "GET", "/health", timeout=1.0)
        except OSError:
            status = 0
        if status == 200:
            return time.perf_counter() - started
        time.sleep(interval)
    raise BenchError(f"/health gave no 200 within {timeout:.0f} s:\n{log_tail(log)}")
