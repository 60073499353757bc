"""Results of one harness run: raw samples, medians over rounds, target verdicts, the JSON.

Samples are kept per suite — one REST suite per server (``uvicorn``, ``granian``,
``hypercorn``: ours vs bare FastAPI on that server) and ``grpc`` (our gRPC server vs a
bare ``grpc.aio`` one) — then per app (``bare``, ``ours``) and endpoint. The targets are
informational: a MISS is printed, it does not fail the run. Tables are in ``_tables``.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _load import LoadResult

GRPC = "grpc"  # the suite name of the gRPC comparison
STARVED = 0.9  # a saturated server uses its whole core; less means it waited or was pre-empted
LOAD_BOUND = 0.9  # a load generator using this much of its core may be what limits the rate
CONTENDED = 0.10  # other processes using this share of the server core skew that measurement
COLD_START_MAX = 3.0  # seconds, ours on every server


@dataclass(frozen=True)
class Goal:
    """``ours/bare >= min_ratio`` in req/s (calls/s for gRPC) for one endpoint of a suite."""

    endpoint: str
    min_ratio: float


REST_GOALS = (Goal("GET /health", 0.8), Goal("POST /tell-joke", 0.5))
GRPC_GOALS = (Goal("gRPC Health", 0.7),)


@dataclass(frozen=True)
class Verdict:
    suite: str  # a server name, or "grpc"
    what: str  # an endpoint, or "cold start"
    want: str  # ">= 0.80x", "<= 3.0 s"
    value: float
    ok: bool

    @property
    def got(self) -> str:
        return f"{self.value:.2f} s" if self.what == "cold start" else f"{self.value:.2f}x"


@dataclass
class Results:
    """Filled in while the run goes; everything else is derived."""

    meta: dict[str, Any]
    runs: dict[str, dict[str, dict[str, list[LoadResult]]]] = field(default_factory=dict)
    cold_starts: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    processes: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def add_run(self, suite: str, app: str, endpoint: str, result: LoadResult) -> None:
        self.runs.setdefault(suite, {}).setdefault(app, {}).setdefault(endpoint, []).append(result)
        where = f"{suite}: {app} {endpoint}"
        if result.socket_errors:
            self.warn(
                f"{where}: {result.socket_errors} socket errors, {result.timeouts} of them "
                "timeouts (no answer within 2 s); those requests are missing from the "
                "latency numbers, so p99 is understated"
            )
        others = result.others_on_server_core
        busy, load = result.server_busy, result.load_busy
        if others is not None and others > CONTENDED:
            used = f"the server used {busy:.0%} of its core, " if busy is not None else ""
            self.warn(
                f"{where}: {used}other processes {others:.0%} of it meanwhile; req/s and "
                "latency are skewed, CPU µs per request much less"
            )
        elif busy is not None and busy < STARVED:
            why = (
                f"the load generator used {load:.0%} of its core and likely limited the rate"
                if load is not None and load >= LOAD_BOUND
                else "the load could not saturate it, or something stole it time"
            )
            self.warn(f"{where}: the server used only {busy:.0%} of its core; {why}")

    def add_cold_start(self, server: str, app: str, seconds: float) -> None:
        self.cold_starts.setdefault(server, {}).setdefault(app, []).append(seconds)

    def add_processes(self, suite: str, app: str, processes: int, threads: int) -> None:
        self.processes.setdefault(suite, {})[app] = {"processes": processes, "threads": threads}

    def rest_suites(self) -> list[str]:
        return [s for s in self.runs if s != GRPC]

    def endpoints(self, suite: str) -> list[str]:
        return list(self.runs[suite].get("ours", {}))

    def summary(self, suite: str, app: str, endpoint: str) -> dict[str, float]:
        rounds = self.runs[suite][app][endpoint]
        cpu = [c for r in rounds if (c := r.cpu_us_per_request) is not None]
        return {
            "rps": statistics.median(r.rps for r in rounds),
            "p50_ms": statistics.median(r.p50_ms for r in rounds),
            "p99_ms": statistics.median(r.p99_ms for r in rounds),
            "cpu_us_per_request": statistics.median(cpu) if cpu else float("nan"),
        }

    def ratio(self, suite: str, endpoint: str) -> float:
        ours = self.summary(suite, "ours", endpoint)["rps"]
        return ours / self.summary(suite, "bare", endpoint)["rps"]

    def cold_start(self, server: str, app: str) -> float | None:
        samples = self.cold_starts.get(server, {}).get(app)
        return statistics.median(samples) if samples else None

    def verdicts(self) -> list[Verdict]:
        out = []
        for suite in self.runs:
            for goal in GRPC_GOALS if suite == GRPC else REST_GOALS:
                if goal.endpoint in self.runs[suite].get("ours", {}):
                    ratio = self.ratio(suite, goal.endpoint)
                    want = f">= {goal.min_ratio:.2f}x"
                    out.append(Verdict(suite, goal.endpoint, want, ratio, ratio >= goal.min_ratio))
        for server in self.cold_starts:
            if (start := self.cold_start(server, "ours")) is not None:
                want = f"<= {COLD_START_MAX:.1f} s"
                out.append(Verdict(server, "cold start", want, start, start <= COLD_START_MAX))
        return out

    def as_json(self) -> dict[str, Any]:
        suites: dict[str, Any] = {}
        for suite, apps in self.runs.items():
            suites[suite] = {
                ep: {
                    "bare": self.summary(suite, "bare", ep),
                    "ours": self.summary(suite, "ours", ep),
                    "ratio_ours_bare": self.ratio(suite, ep),
                }
                for ep in apps.get("ours", {})
            }
        return {
            "meta": self.meta,
            "summary": suites,
            "cold_start_s": {
                server: {
                    app: {"median": statistics.median(samples), "samples": samples}
                    for app, samples in apps.items()
                }
                for server, apps in self.cold_starts.items()
            },
            "processes": self.processes,
            "targets": [
                {
                    "suite": v.suite,
                    "target": v.what,
                    "want": v.want,
                    "value": v.value,
                    "pass": v.ok,
                }
                for v in self.verdicts()
            ],
            "warnings": self.warnings,
            "rounds": {
                suite: {
                    app: {ep: [r.as_dict() for r in rs] for ep, rs in eps.items()}
                    for app, eps in apps.items()
                }
                for suite, apps in self.runs.items()
            },
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n")
