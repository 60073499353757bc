"""The printed report: one table per server, the gRPC table, the summary, the warnings.

Pure formatting of a ``_report.Results``; every number comes from there.
"""

from __future__ import annotations

from _report import COLD_START_MAX, GRPC, GRPC_GOALS, REST_GOALS, Results, Verdict


def render(results: Results, *, grpc_setup: str = "") -> str:
    parts = [_suite_table(results, suite) for suite in results.rest_suites()]
    if GRPC in results.runs:
        parts.append(_grpc_table(results, grpc_setup))
    parts.append(_summary(results))
    if results.warnings:
        parts.append("\n".join(["warnings", *(f"  ! {w}" for w in results.warnings)]))
    return "\n\n".join(parts)


def _lat(summary: dict[str, float]) -> str:
    return f"{summary['p50_ms']:.2f} / {summary['p99_ms']:.2f}"


def _load_rows(results: Results, suite: str, unit: str, first: str) -> list[str]:
    head = (
        f"{first:<17}{'bare ' + unit:>13}{'ours ' + unit:>13}{'ours/bare':>10}"
        f"   {'bare p50 / p99 ms':<19}{'ours p50 / p99 ms':<19}"
    )
    lines = [head, "-" * len(head)]
    for ep in results.endpoints(suite):
        bare, ours = results.summary(suite, "bare", ep), results.summary(suite, "ours", ep)
        lines.append(
            f"{ep:<17}{bare['rps']:>13.0f}{ours['rps']:>13.0f}{results.ratio(suite, ep):>10.2f}"
            f"   {_lat(bare):<19}{_lat(ours):<19}"
        )
    return lines


def _cpu_rows(results: Results, suite: str, per: str) -> list[str]:
    lines = [f"{'server CPU per ' + per:<28}{'bare µs':>9}{'ours µs':>9}{'ours - bare':>13}"]
    for ep in results.endpoints(suite):
        bare = results.summary(suite, "bare", ep)["cpu_us_per_request"]
        ours = results.summary(suite, "ours", ep)["cpu_us_per_request"]
        lines.append(f"{ep:<28}{bare:>9.0f}{ours:>9.0f}{ours - bare:>+13.0f}")
    return lines


def _processes(results: Results, suite: str) -> str:
    counts = results.processes.get(suite, {})
    if not counts:
        return ""
    said = ", ".join(
        f"{app} {c['processes']} process{'es' if c['processes'] > 1 else ''} / "
        f"{c['threads']} threads"
        for app, c in counts.items()
    )
    return f"measured process trees: {said}"


def _suite_table(results: Results, suite: str) -> str:
    title = f"== {suite}: ours vs bare FastAPI, both on {suite} =="
    lines = [title, *_load_rows(results, suite, "req/s", "endpoint"), ""]
    lines += _cpu_rows(results, suite, "request")
    if (procs := _processes(results, suite)) != "":
        lines.append(procs)
    starts = results.cold_starts.get(suite, {})
    if starts:
        n = max(len(s) for s in starts.values())
        said = ", ".join(f"{app} {results.cold_start(suite, app):.2f} s" for app in starts)
        lines.append(f"cold start, spawn to first 200 on /health (median of {n}): {said}")
    return "\n".join(line.rstrip() for line in lines)


def _grpc_table(results: Results, setup: str) -> str:
    title = "== gRPC: our Health RPC through our full gRPC server vs a bare grpc.aio server =="
    lines = [title]
    if setup:
        lines.append(setup)
    lines += [*_load_rows(results, GRPC, "calls/s", "rpc"), ""]
    lines += _cpu_rows(results, GRPC, "call")
    if (procs := _processes(results, GRPC)) != "":
        lines.append(procs)
    return "\n".join(line.rstrip() for line in lines)


def _cell(verdict: Verdict | None, delta: float | None) -> str:
    if verdict is None:
        return "-"
    extra = f" {delta:+6.0f} µs" if delta is not None else ""
    return f"{verdict.got} {'PASS' if verdict.ok else 'MISS'}{extra}"


def _delta(results: Results, suite: str, endpoint: str) -> float:
    bare = results.summary(suite, "bare", endpoint)["cpu_us_per_request"]
    return results.summary(suite, "ours", endpoint)["cpu_us_per_request"] - bare


def _summary(results: Results) -> str:
    verdicts = {(v.suite, v.what): v for v in results.verdicts()}
    servers = list(dict.fromkeys([*results.rest_suites(), *results.cold_starts]))
    lines = ["== summary: ours/bare req/s vs target; ours - bare server CPU µs per request =="]
    if servers:
        heads = [f"{g.endpoint} (>= {g.min_ratio:.2f}x)" for g in REST_GOALS]
        heads.append(f"cold start ours / bare (<= {COLD_START_MAX:.0f} s)")
        width = max(28, *(len(h) + 2 for h in heads))
        lines.append(f"{'server':<11}" + "".join(f"{h:<{width}}" for h in heads))
        for server in servers:
            cells = []
            for goal in REST_GOALS:
                verdict = verdicts.get((server, goal.endpoint))
                has = verdict is not None
                cells.append(
                    _cell(verdict, _delta(results, server, goal.endpoint) if has else None)
                )
            cells.append(_cold_cell(results, server, verdicts.get((server, "cold start"))))
            lines.append(f"{server:<11}" + "".join(f"{c:<{width}}" for c in cells))
    if GRPC in results.runs:
        for goal in GRPC_GOALS:
            verdict = verdicts.get((GRPC, goal.endpoint))
            delta = _delta(results, GRPC, goal.endpoint) if verdict else None
            lines.append(
                f"{'gRPC':<11}{goal.endpoint} (>= {goal.min_ratio:.2f}x): "
                f"{_cell(verdict, delta)} per call"
            )
    lines.append("(targets are informational: a MISS does not fail the run)")
    return "\n".join(line.rstrip() for line in lines)


def _cold_cell(results: Results, server: str, verdict: Verdict | None) -> str:
    if verdict is None:
        return "-"
    bare = results.cold_start(server, "bare")
    said = f"{verdict.value:.2f} / {bare:.2f} s" if bare is not None else verdict.got
    return f"{said} {'PASS' if verdict.ok else 'MISS'}"
