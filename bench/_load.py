# SPDX-License-Identifier: Apache-2.0
"""Load generators: ``wrk`` (installed with apt-get when missing) or the Python fallback.

Both run as a child process pinned to the load core and report the same ``LoadResult``;
one run of the harness uses one of them for every app, so ratios compare like with like.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _proc import LOCALHOST, BenchError, Children

BENCH_DIR = Path(__file__).resolve().parent
APT_TIMEOUT = 600.0
# The key is ours' bench key (_apps.SECURED_ENV); the bare app ignores the header.
JSON_HEADERS = {"Content-Type": "application/json", "X-API-Key": "bench-key-0123456789abcdef"}


@dataclass(frozen=True)
class Target:
    """One endpoint under load."""

    label: str
    method: str
    path: str
    body: bytes = b""


@dataclass(frozen=True)
class LoadResult:
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int  # connect, read, write and timeout errors together
    timeouts: int = 0  # requests given up after 2 s: not part of the latency numbers
    # The load generator's own CPU time, when it reports it (the Python ones do, wrk not).
    load_cpu_s: float | None = None
    # Filled in by the harness from /proc: the server's CPU time (whole process tree)
    # during the measurement, and the share of the server's core that other processes
    # used meanwhile (busy time of that core minus the server's own).
    server_cpu_s: float | None = None
    others_on_server_core: float | None = None
    # Resident memory of the server's process tree right after the measurement, in KiB.
    server_rss_kib: int | None = None
    # Every latency percentile the load generator reports, keyed by the percentile
    # ("50", "99.9"): wrk gives 50/75/90/99, the Python generators more. The charts draw
    # the latency curve from these.
    percentiles_ms: dict[str, float] = field(default_factory=dict)

    @property
    def cpu_us_per_request(self) -> float | None:
        if self.server_cpu_s is None or not self.requests:
            return None
        return self.server_cpu_s / self.requests * 1e6

    @property
    def server_busy(self) -> float | None:
        """Share of one core the server used: below ~0.9 it was starved or not saturated."""
        if self.server_cpu_s is None or not self.duration_s:
            return None
        return self.server_cpu_s / self.duration_s

    @property
    def load_busy(self) -> float | None:
        """Share of one core the load generator used: near 1 it may be the bottleneck."""
        if self.load_cpu_s is None or not self.duration_s:
            return None
        return self.load_cpu_s / self.duration_s

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "cpu_us_per_request": self.cpu_us_per_request,
            "server_busy": self.server_busy,
            "load_busy": self.load_busy,
        }


def _apt_get(*args: str) -> bool:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(
            ["apt-get", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=APT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def find_or_install_wrk() -> tuple[str | None, str]:
    """(path to wrk or None, how it was found / why not)."""
    if (path := shutil.which("wrk")) is not None:
        return path, "found on PATH"
    if shutil.which("apt-get") is None:
        return None, "wrk is not on PATH and there is no apt-get"
    print("bench: wrk not found; installing it with apt-get …", flush=True)
    if not _apt_get("install", "-y", "wrk"):
        _apt_get("update")
        _apt_get("install", "-y", "wrk")
    if (path := shutil.which("wrk")) is not None:
        return path, "installed with apt-get"
    return None, "wrk is not on PATH and `apt-get install -y wrk` failed"


class Wrk:
    """``wrk -t1 -cN -dTs --latency`` with a Lua script for request bodies."""

    name = "wrk"

    def __init__(self, path: str, threads: int, workdir: Path) -> None:
        self.path = path
        self.threads = threads
        self.workdir = workdir
        self.version = self._version()

    def _version(self) -> str:
        # `wrk -v` prints its banner and exits 1.
        done = subprocess.run(
            [self.path, "-v"], capture_output=True, text=True, timeout=10, check=False
        )
        first = (done.stdout or done.stderr).strip().splitlines()
        return first[0].split(" [")[0] if first else "wrk"

    def _script(self, target: Target) -> Path | None:
        if not target.body:
            return None
        script = self.workdir / f"{target.method.lower()}{target.path.replace('/', '_')}.lua"
        body = target.body.decode()
        if "]]" in body:
            raise BenchError("request body must not contain ']]' (Lua long string)")
        script.write_text(
            f'wrk.method = "{target.method}"\n'
            f"wrk.body = [[{body}]]\n"
            + "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in JSON_HEADERS.items())
        )
        return script

    def run(
        self,
        children: Children,
        port: int,
        target: Target,
        *,
        connections: int,
        duration: int,
        cpu: int | None,
    ) -> LoadResult:
        argv = [
            self.path,
            f"-t{self.threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
        ]
        if (script := self._script(target)) is not None:
            argv += ["-s", str(script)]
        argv.append(f"http://{LOCALHOST}:{port}{target.path}")
        out = run_child(children, argv, cpu, timeout=duration + 30)
        return parse_wrk(out)


class PythonLoad:
    """``bench/_pyload.py`` in a child process (see its docstring for its limits)."""

    name = "python fallback"

    def __init__(self) -> None:
        self.version = f"asyncio streams, Python {sys.version.split()[0]}"

    def run(
        self,
        children: Children,
        port: int,
        target: Target,
        *,
        connections: int,
        duration: int,
        cpu: int | None,
    ) -> LoadResult:
        argv = [
            sys.executable,
            str(BENCH_DIR / "_pyload.py"),
            f"--port={port}",
            f"--method={target.method}",
            f"--path={target.path}",
            f"--body={target.body.decode()}",
            f"--connections={connections}",
            f"--duration={duration}",
        ]
        out = run_child(children, argv, cpu, timeout=duration + 30)
        try:
            return LoadResult(**json.loads(out.strip().splitlines()[-1]))
        except (ValueError, TypeError, IndexError) as exc:
            raise BenchError(f"unreadable output from the Python load generator: {out!r}") from exc


LoadGenerator = Wrk | PythonLoad


def run_child(
    children: Children,
    argv: list[str],
    cpu: int | None,
    timeout: float,
    env: dict[str, str] | None = None,
) -> str:
    """Run a load generator (or a probe) to completion; its stdout, or ``BenchError``."""
    with tempfile.TemporaryFile("w+") as err:
        proc = children.spawn(argv, cpu=cpu, env=env, stdout=subprocess.PIPE, stderr=err)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"{Path(argv[0]).name} did not finish within {timeout:.0f} s") from exc
        finally:
            children.stop(proc, grace=2.0)
        if proc.returncode != 0:
            err.seek(0)
            raise BenchError(f"{argv[0]} exited with {proc.returncode}: {err.read().strip()}")
        return str(out.decode(errors="replace"))


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_PERCENTILE = re.compile(r"^\s*(\d+(?:\.\d+)?)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_REQUESTS = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def parse_wrk(out: str) -> LoadResult:
    """Requests/s, p50 and p99 from ``wrk --latency`` text output."""
    percentiles = {float(q): float(v) * _UNITS_MS[u] for q, v, u in _PERCENTILE.findall(out)}
    requests = _REQUESTS.search(out)
    rps = _RPS.search(out)
    if requests is None or rps is None or 50.0 not in percentiles or 99.0 not in percentiles:
        raise BenchError(f"unexpected wrk output:\n{out}")
    socket = _SOCKET.search(out)
    non_2xx = _NON_2XX.search(out)
    return LoadResult(
        requests=int(requests.group(1)),
        duration_s=float(requests.group(2)) * _UNITS_MS[requests.group(3)] / 1000,
        rps=float(rps.group(1)),
        p50_ms=percentiles[50.0],
        p99_ms=percentiles[99.0],
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(g) for g in socket.groups()) if socket else 0,
        timeouts=int(socket.group(4)) if socket else 0,
        percentiles_ms={f"{q:g}": ms for q, ms in sorted(percentiles.items())},
    )


def choose(kind: str, threads: int, workdir: Path) -> tuple[LoadGenerator, str]:
    """The load generator for this run and a one-line note on how it was chosen."""
    if kind == "python":
        return PythonLoad(), "python fallback (asked for with --loadgen python)"
    path, how = find_or_install_wrk()
    if path is not None:
        gen = Wrk(path, threads, workdir)
        return gen, f"{gen.version} ({how})"
    if kind == "wrk":
        raise BenchError(f"--loadgen wrk, but {how}")
    return PythonLoad(), f"python fallback, because {how}; its req/s are a lower bound"
