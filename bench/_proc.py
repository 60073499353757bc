# SPDX-License-Identifier: Apache-2.0
"""Child processes of the benchmark: spawned pinned to a core, always stopped.

Every process goes through one ``Children`` registry so that an error, Ctrl-C or
SIGTERM in the harness still ends each of them: SIGTERM first (uvicorn drains), then
SIGKILL after a bounded wait. Children run in their own session, so a Ctrl-C in the
terminal reaches only the harness, which then stops them in order.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
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


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3… of ``/proc/<pid>/stat`` (index 0 is the state), or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces; fields follow the last ')'.
    return stat.rsplit(")", 1)[1].split()


def _children(pid: int) -> set[int]:
    """Direct children of ``pid``: ``/proc/<pid>/task/*/children`` where the kernel has it
    (CONFIG_PROC_CHILDREN), else a scan of every process's parent id."""
    found: set[int] = set()
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    files = [task / "children" for task in tasks]
    if files and files[0].exists():
        for f in files:
            with contextlib.suppress(OSError):
                found.update(int(c) for c in f.read_text().split())
        return found
    found.update(p for p, fields in _all_stats() if int(fields[1]) == pid)  # field 4: ppid
    return found


def _all_stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, stat fields) of every process still there."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) is not None:
            yield int(entry.name), fields


def process_tree(pid: int, max_depth: int = 4) -> list[int]:
    """``pid`` and its descendants (granian's worker, multiprocessing's resource tracker)."""
    tree, level = [pid], [pid]
    for _ in range(max_depth):  # bounded: a server tree is two levels deep
        level = sorted(c for p in level for c in _children(p))
        if not level:
            break
        tree += level
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by ``pid`` and all its descendants, all threads.

    One process is not enough: granian serves from a spawned worker process while the pid
    we started only supervises. Children that already exited and were reaped count through
    their parent's cutime/cstime. 10 ms resolution.
    """
    ticks = 0
    for proc in process_tree(pid):
        if (fields := _stat_fields(proc)) is not None:
            # Fields 14-17 of proc(5): utime, stime, cutime, cstime.
            ticks += sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def thread_count(pid: int) -> int:
    """Threads of ``pid`` and its descendants, from ``/proc/<pid>/task``."""
    total = 0
    for proc in process_tree(pid):
        with contextlib.suppress(OSError):
            total += sum(1 for _ in Path(f"/proc/{proc}/task").iterdir())
    return total


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and its descendants: the sum of their ``VmRSS``, in KiB.

    Pages shared between processes of the tree (granian's supervisor and worker map the
    same libraries) count once per process, as ``ps`` would show them side by side.
    """
    total = 0
    for proc in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{proc}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])  # "VmRSS:    12345 kB"
                    break
    return total


def cpu_ticks() -> dict[int, tuple[int, int]]:
    """{cpu: (busy, total)} clock ticks since boot, from /proc/stat (busy: not idle/iowait)."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(v) for v in values[:8]]
            idle = ticks[3] + ticks[4]  # idle + iowait
            out[int(name[3:])] = (sum(ticks) - idle, sum(ticks))
    return out


def busy_seconds(
    before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]], cpu: int
) -> tuple[float, float] | None:
    """(busy, elapsed) seconds of ``cpu`` between two ``cpu_ticks`` samples."""
    if cpu not in before or cpu not in after:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    return (after[cpu][0] - before[cpu][0]) / hz, (after[cpu][1] - before[cpu][1]) / hz


def busy_cpus(cpus: Sequence[int], seconds: float = 1.0) -> dict[int, float]:
    """Share of each CPU in ``cpus`` that other processes kept busy over ``seconds``."""
    before = cpu_ticks()
    time.sleep(seconds)
    after = cpu_ticks()
    shares = {}
    for cpu in cpus:
        if (spent := busy_seconds(before, after, cpu)) is not None:
            busy, total = spent
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
        """SIGTERM, wait at most ``grace`` seconds, then SIGKILL (also bounded).

        Then whatever is left of the process group the child leads (it was started in a
        session of its own): a granian worker whose supervisor died, multiprocessing's
        resource tracker (which ignores SIGTERM and leaves once its pipe closes).
        """
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            _end_group(proc.pid)
        finally:
            if proc in self._procs:
                self._procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self._procs):
            try:
                self.stop(proc, grace=5.0)
            except (OSError, subprocess.TimeoutExpired) as exc:
                print(f"bench: could not stop pid {proc.pid}: {exc}")


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes whose process group is ``pgid``."""
    # Fields 5 and 3 of proc(5): process group, state.
    return [p for p, fields in _all_stats() if int(fields[2]) == pgid and fields[0] != "Z"]


def _end_group(pgid: int, wait: float = 2.0) -> None:
    """Give the rest of group ``pgid`` ``wait`` seconds to leave on its own, then SIGKILL."""
    deadline = time.monotonic() + wait
    while _group_members(pgid):
        if time.monotonic() >= deadline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            return
        time.sleep(0.05)


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


def _interrupt(signum: int, _: FrameType | None) -> None:
    # SIGTERM/SIGHUP unwind like Ctrl-C, so the `finally` below stops every child.
    raise KeyboardInterrupt(signal.Signals(signum).name)


def run_harness(name: str, body: Callable[[Path, Children], int]) -> int:
    """Run a benchmark's ``body(workdir, children)`` with the shared exit rules.

    0 or what ``body`` returns when it completed, 1 on a ``BenchError``, 130 when
    interrupted (Ctrl-C, SIGTERM, SIGHUP); every child is stopped on the way out.
    """
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    children = Children()
    try:
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
            return body(Path(tmp), children)
    except KeyboardInterrupt:
        print(f"\n{name}: interrupted; stopping servers", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 1
    finally:
        children.stop_all()
