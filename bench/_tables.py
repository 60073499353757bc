# SPDX-License-Identifier: Apache-2.0
"""The printed report: one table per server, the gRPC table, the summary, the warnings.

Pure formatting of a ``_report.Results``; every number comes from there. Each table has
one row per app and endpoint (bare, naive, ours, as far as each was measured) and puts
ours' ratios against both baselines on ours' row, so the one that matters most, ours
over naive, sits next to ours over bare.
"""

from __future__ import annotations

from _apps import APPS
from _report import COLD_START_MAX, GRPC, GRPC_GOALS, REST_GOALS, Goal, Results, Verdict

BASELINES = ("naive", "bare")  # ratio columns, most telling first


def render(results: Results, *, grpc_setup: str = "") -> str:
    parts = [_suite_table(results, suite) for suite in results.rest_suites()]
    if GRPC in results.runs:
        parts.append(_grpc_table(results, grpc_setup))
    parts.append(_summary(results))
    if results.warnings:
        parts.append("\n".join(["warnings", *(f"  ! {w}" for w in results.warnings)]))
    return "\n\n".join(parts)


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def _rows(results: Results, suite: str, unit: str, first: str) -> list[str]:
    head = (
        f"{first:<17}{'app':<7}{unit:>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU µs':>9}{'RSS MiB':>9}"
        + "".join(f"{'ours/' + b:>12}" for b in BASELINES)
    )
    lines = [head, "-" * len(head)]
    for ep in results.endpoints(suite):
        for i, app in enumerate(results.apps(suite, ep)):
            s = results.summary(suite, app, ep)
            ratios = [results.ratio(suite, ep, b) if app == "ours" else None for b in BASELINES]
            lines.append(
                f"{ep if i == 0 else '':<17}{app:<7}{s['rps']:>9.0f}{s['p50_ms']:>9.2f}"
                f"{s['p99_ms']:>9.2f}{s['cpu_us_per_request']:>9.0f}{s['rss_mib']:>9.1f}"
                + "".join(f"{_ratio(r):>12}" for r in ratios)
            )
    return lines


def _processes(results: Results, suite: str) -> str:
    counts = results.processes.get(suite, {})
    if not counts:
        return ""
    said = ", ".join(
        f"{app} {c['processes']} process{'es' if c['processes'] > 1 else ''} / "
        f"{c['threads']} thread{'s' if c['threads'] > 1 else ''}"
        for app in APPS
        if (c := counts.get(app)) is not None
    )
    return f"measured process trees: {said}"


_LEGEND = (
    "{unit}, p50/p99 ms: from the load generator; ours/X: ours' {unit} over X's\n"
    "CPU µs: server CPU time per {per} (whole process tree); RSS MiB: resident memory of "
    "that tree right after the load"
)


def _suite_table(results: Results, suite: str) -> str:
    title = f"== {suite}: bare FastAPI, naive FastAPI + Genkit flow, ours; all on {suite} =="
    lines = [title, *_rows(results, suite, "req/s", "endpoint")]
    lines.append(_LEGEND.format(unit="req/s", per="request"))
    if (procs := _processes(results, suite)) != "":
        lines.append(procs)
    starts = results.cold_starts.get(suite, {})
    if starts:
        n = max(len(s) for s in starts.values())
        said = ", ".join(
            f"{app} {results.cold_start(suite, app):.2f} s" for app in APPS if app in starts
        )
        lines.append(f"cold start, spawn to first 200 on /health (median of {n}): {said}")
    return "\n".join(line.rstrip() for line in lines)


def _grpc_table(results: Results, setup: str) -> str:
    title = (
        "== gRPC: ours (full gRPC server) vs bare grpc.aio on Health, "
        "vs a naive grpc.aio servicer around the same flow on TellJoke =="
    )
    lines = [title]
    if setup:
        lines.append(setup)
    lines += _rows(results, GRPC, "calls/s", "rpc")
    lines.append(_LEGEND.format(unit="calls/s", per="call"))
    if (procs := _processes(results, GRPC)) != "":
        lines.append(procs)
    return "\n".join(line.rstrip() for line in lines)


def _cell(verdict: Verdict | None, delta: float | None) -> str:
    if verdict is None:
        return "-"
    extra = f" {delta:+6.0f} µs" if delta is not None else ""
    return f"{verdict.got} {'PASS' if verdict.ok else 'MISS'}{extra}"


def _goal_cell(
    results: Results, suite: str, goal: Goal, verdicts: dict[tuple[str, str], Verdict]
) -> str:
    verdict = verdicts.get((suite, goal.label))
    # A throughput goal shows what ours' request costs over the baseline's; p99 stands alone.
    delta = (
        results.cpu_delta(suite, goal.endpoint, goal.baseline)
        if verdict is not None and goal.metric == "rps"
        else None
    )
    return _cell(verdict, delta)


def _summary(results: Results) -> str:
    verdicts = {(v.suite, v.what): v for v in results.verdicts()}
    servers = list(dict.fromkeys([*results.rest_suites(), *results.cold_starts]))
    lines = [
        "== summary: ours over the baseline vs target (req/s, or p99 where said); "
        "ours - baseline server CPU µs per request =="
    ]
    if servers:
        heads = [f"{g.label} ({g.want})" for g in REST_GOALS]
        limits = "/".join(f"{v:.0f}" for v in dict.fromkeys(COLD_START_MAX.values()))
        heads.append(f"cold start ours ({'/'.join(BASELINES)}) (<= {limits} s)")
        width = max(28, *(len(h) + 2 for h in heads))
        lines.append(f"{'server':<11}" + "".join(f"{h:<{width}}" for h in heads))
        for server in servers:
            cells = [_goal_cell(results, server, goal, verdicts) for goal in REST_GOALS]
            cells.append(_cold_cell(results, server, verdicts.get((server, "cold start"))))
            lines.append(f"{server:<11}" + "".join(f"{c:<{width}}" for c in cells))
    if GRPC in results.runs:
        for goal in GRPC_GOALS:
            cell = _goal_cell(results, GRPC, goal, verdicts)
            lines.append(f"{'gRPC':<11}{goal.label} ({goal.want}): {cell} per call")
    lines.append("(targets are informational: a MISS does not fail the run)")
    return "\n".join(line.rstrip() for line in lines)


def _cold_cell(results: Results, server: str, verdict: Verdict | None) -> str:
    if verdict is None:
        return "-"
    others = [results.cold_start(server, b) for b in BASELINES]
    said = " / ".join("-" if s is None else f"{s:.2f}" for s in others)
    return f"{verdict.value:.2f} ({said}) s {'PASS' if verdict.ok else 'MISS'}"
