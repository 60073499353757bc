# SPDX-License-Identifier: Apache-2.0
"""Results of one harness run: raw samples, medians over rounds, target verdicts, the JSON.

Samples are kept per suite — one REST suite per server (``uvicorn``, ``granian``,
``hypercorn``: bare FastAPI, naive FastAPI + Genkit and ours on that server) and ``grpc``
(our gRPC server vs the bare and naive ``grpc.aio`` ones) — then per app (``bare``,
``naive``, ``ours``) and endpoint. Not every app runs every endpoint: over gRPC, bare
answers only ``Health`` and naive is measured only on ``TellJoke``. Each target compares
ours with one baseline on one endpoint. The targets are informational: a MISS is printed,
it does not fail the run. Tables are in ``_tables``.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _apps import APPS
from _load import LoadResult

GRPC = "grpc"  # the suite name of the gRPC comparison
STARVED = 0.9  # a saturated server uses its whole core; less means it waited or was pre-empted
LOAD_BOUND = 0.9  # a load generator using this much of its core may be what limits the rate
CONTENDED = 0.10  # other processes using this share of the server core skew that measurement
# Seconds from spawn to the first 200, ours: a pod serving within 2 s on uvicorn; granian
# and hypercorn start a worker process (or more machinery) and get 3 s.
COLD_START_MAX = {"uvicorn": 2.0, "granian": 3.0, "hypercorn": 3.0}


@dataclass(frozen=True)
class Goal:
    """Ours over ``baseline`` on one endpoint of a suite: req/s (calls/s for gRPC) at
    least ``bound`` times the baseline's, or, for ``metric="p99_ms"``, p99 at most
    ``bound`` times the baseline's."""

    endpoint: str
    baseline: str  # "bare" or "naive"
    bound: float
    metric: str = "rps"

    @property
    def label(self) -> str:
        what = f"{self.endpoint} p99" if self.metric == "p99_ms" else self.endpoint
        return f"{what} vs {self.baseline}"

    @property
    def want(self) -> str:
        return f"{'<=' if self.metric == 'p99_ms' else '>='} {self.bound:.2f}x"

    def met(self, ratio: float) -> bool:
        return ratio <= self.bound if self.metric == "p99_ms" else ratio >= self.bound


# The flow endpoint against the code the kit replaces (the kit must pay for itself), the
# liveness probe against bare FastAPI (it must stay cheap and prompt whatever the stack).
REST_GOALS = (
    Goal("POST /tell-joke", "naive", 1.2),
    Goal("GET /health", "bare", 0.8),
    Goal("GET /health", "bare", 1.5, "p99_ms"),
)
GRPC_GOALS = (Goal("gRPC TellJoke", "naive", 1.2), Goal("gRPC Health", "bare", 0.8))


@dataclass(frozen=True)
class Verdict:
    suite: str  # a server name, or "grpc"
    what: str  # a goal's label ("POST /tell-joke vs naive"), or "cold start"
    want: str  # ">= 0.80x", "<= 1.50x", "<= 3.0 s"
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

    def apps(self, suite: str, endpoint: str) -> list[str]:
        """The apps measured on ``endpoint`` in ``suite``, in the order of ``APPS``."""
        return [a for a in APPS if endpoint in self.runs[suite].get(a, {})]

    def summary(self, suite: str, app: str, endpoint: str) -> dict[str, float]:
        rounds = self.runs[suite][app][endpoint]
        cpu = [c for r in rounds if (c := r.cpu_us_per_request) is not None]
        rss = [r.server_rss_kib / 1024 for r in rounds if r.server_rss_kib is not None]
        return {
            "rps": statistics.median(r.rps for r in rounds),
            "p50_ms": statistics.median(r.p50_ms for r in rounds),
            "p99_ms": statistics.median(r.p99_ms for r in rounds),
            "cpu_us_per_request": statistics.median(cpu) if cpu else float("nan"),
            "rss_mib": statistics.median(rss) if rss else float("nan"),
        }

    def ratio(self, suite: str, endpoint: str, baseline: str, metric: str = "rps") -> float | None:
        """Ours over ``baseline`` on ``metric``; None unless both were measured."""
        if not {"ours", baseline} <= set(self.apps(suite, endpoint)):
            return None
        ours = self.summary(suite, "ours", endpoint)[metric]
        return ours / self.summary(suite, baseline, endpoint)[metric]

    def cpu_delta(self, suite: str, endpoint: str, baseline: str) -> float | None:
        """Ours' server CPU µs per request minus ``baseline``'s; None unless both ran."""
        if not {"ours", baseline} <= set(self.apps(suite, endpoint)):
            return None
        ours = self.summary(suite, "ours", endpoint)["cpu_us_per_request"]
        return ours - self.summary(suite, baseline, endpoint)["cpu_us_per_request"]

    def cold_start(self, server: str, app: str) -> float | None:
        samples = self.cold_starts.get(server, {}).get(app)
        return statistics.median(samples) if samples else None

    def verdicts(self) -> list[Verdict]:
        out = []
        for suite in self.runs:
            for goal in GRPC_GOALS if suite == GRPC else REST_GOALS:
                ratio = self.ratio(suite, goal.endpoint, goal.baseline, goal.metric)
                if ratio is not None:
                    out.append(Verdict(suite, goal.label, goal.want, ratio, goal.met(ratio)))
        for server in self.cold_starts:
            if (start := self.cold_start(server, "ours")) is not None:
                limit = COLD_START_MAX.get(server, 3.0)
                want = f"<= {limit:.1f} s"
                out.append(Verdict(server, "cold start", want, start, start <= limit))
        return out

    def as_json(self) -> dict[str, Any]:
        suites: dict[str, Any] = {}
        for suite in self.runs:
            suites[suite] = {ep: self._endpoint_json(suite, ep) for ep in self.endpoints(suite)}
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

    def _endpoint_json(self, suite: str, endpoint: str) -> dict[str, Any]:
        """Medians per app, then ours over each baseline that ran: req/s and p99."""
        out: dict[str, Any] = {
            a: self.summary(suite, a, endpoint) for a in self.apps(suite, endpoint)
        }
        for baseline in APPS:
            if baseline != "ours" and (r := self.ratio(suite, endpoint, baseline)) is not None:
                out[f"ratio_ours_{baseline}"] = r
                out[f"p99_ratio_ours_{baseline}"] = self.ratio(suite, endpoint, baseline, "p99_ms")
        return out

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n")
