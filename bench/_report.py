"""Results of one harness run: the medians over rounds, the table, the targets, the JSON.

The targets are informational: a MISS is printed, it does not fail the run.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _apps import APPS
from _load import LoadResult

STARVED = 0.9  # a saturated server uses its whole core; less means it waited or was pre-empted


@dataclass(frozen=True)
class Goal:
    """``ours/bare >= min_ratio`` for an endpoint, or ``ours cold start <= max_seconds``."""

    label: str
    endpoint: str | None = None
    min_ratio: float | None = None
    max_seconds: float | None = None


GOALS = (
    Goal("GET /health ours/bare", endpoint="GET /health", min_ratio=0.8),
    Goal("POST /tell-joke ours/bare", endpoint="POST /tell-joke", min_ratio=0.5),
    Goal("cold start ours", max_seconds=3.0),
)


@dataclass
class Results:
    """Raw samples, filled in while the run goes; everything else is derived."""

    meta: dict[str, Any]
    endpoints: Sequence[str]
    runs: dict[str, dict[str, list[LoadResult]]] = field(default_factory=dict)
    cold_starts: dict[str, list[float]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def add_run(self, app: str, endpoint: str, result: LoadResult) -> None:
        self.runs.setdefault(app, {}).setdefault(endpoint, []).append(result)
        if result.socket_errors:
            self.warn(
                f"{app} {endpoint}: {result.socket_errors} socket errors, {result.timeouts} of "
                "them timeouts (no answer within 2 s); those requests are missing from the "
                "latency numbers, so p99 is understated"
            )
        busy = result.server_busy
        if busy is not None and busy < STARVED:
            self.warn(
                f"{app} {endpoint}: the server used only {busy:.0%} of its core; another "
                "process competed for it, or the load generator could not saturate it"
            )

    def add_cold_start(self, app: str, seconds: float) -> None:
        self.cold_starts.setdefault(app, []).append(seconds)

    def summary(self, app: str, endpoint: str) -> dict[str, float]:
        rounds = self.runs[app][endpoint]
        cpu = [c for r in rounds if (c := r.cpu_us_per_request) is not None]
        return {
            "rps": statistics.median(r.rps for r in rounds),
            "p50_ms": statistics.median(r.p50_ms for r in rounds),
            "p99_ms": statistics.median(r.p99_ms for r in rounds),
            "cpu_us_per_request": statistics.median(cpu) if cpu else float("nan"),
        }

    def ratio(self, endpoint: str) -> float:
        return self.summary("ours", endpoint)["rps"] / self.summary("bare", endpoint)["rps"]

    def cold_start(self, app: str) -> float:
        return statistics.median(self.cold_starts[app])

    def verdicts(self) -> list[tuple[Goal, float, bool]]:
        out = []
        for goal in GOALS:
            if goal.endpoint is not None and goal.min_ratio is not None:
                value = self.ratio(goal.endpoint)
                out.append((goal, value, value >= goal.min_ratio))
            elif goal.max_seconds is not None:
                value = self.cold_start("ours")
                out.append((goal, value, value <= goal.max_seconds))
        return out

    def table(self) -> str:
        head = (
            f"{'endpoint':<17}{'bare req/s':>11}{'ours req/s':>11}{'ours/bare':>10}"
            f"   {'bare p50 / p99 ms':<19}{'ours p50 / p99 ms':<19}"
        )
        lines = [head, "-" * len(head)]
        for ep in self.endpoints:
            bare, ours = self.summary("bare", ep), self.summary("ours", ep)
            lines.append(
                f"{ep:<17}{bare['rps']:>11.0f}{ours['rps']:>11.0f}{self.ratio(ep):>10.2f}"
                f"   {_lat(bare):<19}{_lat(ours):<19}"
            )
        lines += [
            "",
            f"{'server CPU per request':<28}{'bare µs':>9}{'ours µs':>9}{'ours - bare':>13}",
        ]
        for ep in self.endpoints:
            bare_cpu = self.summary("bare", ep)["cpu_us_per_request"]
            ours_cpu = self.summary("ours", ep)["cpu_us_per_request"]
            lines.append(f"{ep:<28}{bare_cpu:>9.0f}{ours_cpu:>9.0f}{ours_cpu - bare_cpu:>+13.0f}")
        lines.append("")
        starts = ", ".join(
            f"{app} {self.cold_start(app):.2f} s" for app in APPS if app in self.cold_starts
        )
        n = len(next(iter(self.cold_starts.values()), []))
        lines.append(f"cold start, spawn to first 200 on /health (median of {n}): {starts}")
        lines += ["", "targets (informational)"]
        for goal, value, ok in self.verdicts():
            want = (
                f">= {goal.min_ratio:.2f}x"
                if goal.min_ratio is not None
                else f"<= {goal.max_seconds:.1f} s"
            )
            got = f"{value:.2f}x" if goal.min_ratio is not None else f"{value:.2f} s"
            lines.append(f"  {goal.label:<28}{want:<10}{got:>9}   {'PASS' if ok else 'MISS'}")
        if self.warnings:
            lines += ["", "warnings", *(f"  ! {w}" for w in self.warnings)]
        return "\n".join(line.rstrip() for line in lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "summary": {
                ep: {
                    "bare": self.summary("bare", ep),
                    "ours": self.summary("ours", ep),
                    "ratio_ours_bare": self.ratio(ep),
                }
                for ep in self.endpoints
            },
            "cold_start_s": {
                app: {"median": self.cold_start(app), "samples": samples}
                for app, samples in self.cold_starts.items()
            },
            "targets": [
                {
                    "target": g.label,
                    "min_ratio": g.min_ratio,
                    "max_seconds": g.max_seconds,
                    "value": v,
                    "pass": ok,
                }
                for g, v, ok in self.verdicts()
            ],
            "warnings": self.warnings,
            "rounds": {
                app: {ep: [r.as_dict() for r in rs] for ep, rs in eps.items()}
                for app, eps in self.runs.items()
            },
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n")


def _lat(summary: dict[str, float]) -> str:
    return f"{summary['p50_ms']:.2f} / {summary['p99_ms']:.2f}"
