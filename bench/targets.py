# SPDX-License-Identifier: Apache-2.0
"""Every performance target in one command: runs the three benches, prints one verdict table.

``run.py`` (ours vs bare and naive on uvicorn, granian and hypercorn, gRPC, cold starts),
``resilience.py`` (cache hits on memory and Redis, 1 000 requests in flight) and
``streams.py`` (5 000 concurrent SSE streams) each write their JSON; this script runs them
one after the other with the options below, then reads those files and lists each target
with what was measured and PASS or MISS. The targets are informational, as in each bench:
a MISS does not fail the command, a bench that fails does. Each bench's own tables are
printed as it runs; the files stay in ``--results`` for a closer look.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from resilience import GOALS, inflight_verdicts
from streams import TARGET_STREAMS, verdicts

BENCH_DIR = Path(__file__).resolve().parent


def _run(script: str, args: list[str]) -> None:
    cmd = [sys.executable, str(BENCH_DIR / script), *args]
    print(f"\ntargets: {' '.join(cmd[1:])}", flush=True)
    subprocess.run(cmd, check=True)


def _rows(results: Path) -> list[tuple[str, str, str]]:
    """(what, measured, verdict) for every target, from the three JSON files."""
    rows: list[tuple[str, str, str]] = []
    missing = [
        n for n in ("run.json", "resilience.json", "streams.json") if not (results / n).exists()
    ]
    rows += [(f"{name}: not run", "", "-") for name in missing]
    harness = _load(results / "run.json")
    for t in harness.get("targets", []):
        value = f"{t['value']:.2f}{' s' if t['target'] == 'cold start' else 'x'}"
        rows.append((f"{t['suite']}: {t['target']} ({t['want']})", value, _pass(t["pass"])))
    resilience = _load(results / "resilience.json")
    for label, goal in GOALS.items():
        got = resilience.get("cache", {}).get(label)
        if got is not None:
            ratio = got["ratio"]
            what = f"cache-hit POST /translate, {label.removeprefix('ours, ')} vs bare POST"
            rows.append((f"{what} (>= {goal:.2f}x)", f"{ratio:.2f}x", _pass(ratio >= goal)))
    if "inflight" in resilience:
        for line in inflight_verdicts(resilience["inflight"]):
            what, _, verdict = line.rpartition(": ")
            rows.append((f"1 000 in flight: {what}", "", verdict))
    streams = _load(results / "streams.json")
    levels = streams.get("levels", [])
    level = next((d for d in levels if d["streams"] == TARGET_STREAMS), None)
    if level is not None:
        for line in verdicts(level):
            what, _, verdict = line.rpartition(": ")
            rows.append((f"{TARGET_STREAMS} SSE streams: {what}", "", verdict))
    return rows


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    return doc


def _pass(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--results", type=Path, default=BENCH_DIR / "results", help="where the JSON files go"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="only print the table from existing results"
    )
    args = parser.parse_args(argv)
    results: Path = args.results
    results.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        _run("run.py", [f"--output={results / 'run.json'}", "--rounds=2"])
        _run("resilience.py", ["--parts=cache,inflight", f"--output={results / 'resilience.json'}"])
        _run("streams.py", [f"--streams={TARGET_STREAMS}", f"--output={results / 'streams.json'}"])
    rows = _rows(results)
    width = max(len(what) for what, _, _ in rows)
    print("\n== every target (informational: a MISS does not fail the run) ==")
    for what, got, verdict in rows:
        print(f"{what:{width}}  {got:>7}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
