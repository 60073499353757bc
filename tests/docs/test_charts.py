# SPDX-License-Identifier: Apache-2.0
"""``bench/charts.py``: every chart from a results file, and the committed charts current.

The script runs as a child process, as ``make charts`` runs it, so matplotlib is never
imported into the test process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

REPO = Path(__file__).resolve().parents[2]
CHARTS = ("throughput.svg", "latency.svg", "inflight.svg")
COMMITTED = REPO / "docs" / "benchmarks"


def _app(rps: float, p50: float, p99: float) -> dict[str, float]:
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "cpu_us_per_request": 1e6 / rps}


# A small results document in the shape run.py and resilience.py write: one REST server
# with full percentile curves for ours only (the others fall back to p50/p99), gRPC
# without rounds, and the in-flight run.
RESULTS: dict[str, Any] = {
    "run": {
        "summary": {
            "uvicorn": {
                "GET /health": {
                    "bare": _app(12000, 4, 7),
                    "naive": _app(11000, 4, 7),
                    "ours": _app(10000, 5, 7),
                },
                "POST /tell-joke": {
                    "bare": _app(8000, 6, 10),
                    "naive": _app(1000, 45, 620),
                    "ours": _app(1300, 37, 510),
                },
            },
            "grpc": {
                "gRPC Health": {"bare": _app(3800, 15, 24), "ours": _app(3000, 20, 29)},
                "gRPC TellJoke": {"naive": _app(850, 71, 95), "ours": _app(840, 75, 121)},
            },
        },
        "rounds": {
            "uvicorn": {
                "ours": {
                    "POST /tell-joke": [
                        {"percentiles_ms": {"50": 36.0, "75": 40.0, "90": 90.0, "99": 500.0}},
                        {"percentiles_ms": {"50": 38.0, "75": 42.0, "90": 95.0, "99": 520.0}},
                    ]
                }
            }
        },
    },
    "resilience": {
        "inflight": {
            "rps": 950.0,
            "p50_ms": 1010.0,
            "p99_ms": 1150.0,
            "max_ms": 1190.0,
            "percentiles_ms": {"50": 1010.0, "90": 1100.0, "99": 1150.0, "99.9": 1180.0},
            "errors": {"non_2xx": 0, "connect": 0, "read": 0, "timeout": 0},
            "rss_before_mib": 84.0,
            "rss_after_mib": 130.0,
            "rss_peak_mib": 140.0,
            "in_flight": 1000,
            "model_latency_ms": 1000.0,
        }
    },
}


def draw(results: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "bench" / "charts.py"), f"--results={results}", f"--out={out}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def svg_text(path: Path) -> str:
    """Every text node of an SVG (the charts keep text as text, not as glyph paths)."""
    root = ElementTree.parse(path).getroot()  # noqa: S314 - our own output
    assert root.tag.endswith("svg")
    return " ".join(t for el in root.iter() if el.tag.endswith("text") for t in el.itertext())


def test_every_chart_is_drawn_from_a_results_file(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps(RESULTS))
    done = draw(results, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(CHARTS)
    throughput = svg_text(tmp_path / "out" / "throughput.svg")
    for label in ("uvicorn", "gRPC", "GET /health", "gRPC TellJoke", "bare", "naive", "ours"):
        assert label in throughput
    assert "1300" in throughput  # ours' req/s on POST /tell-joke, written on its bar
    latency = svg_text(tmp_path / "out" / "latency.svg")
    assert "uvicorn: POST /tell-joke" in latency
    assert "p99.9" in latency
    inflight = svg_text(tmp_path / "out" / "inflight.svg")
    assert "1 000 POST /tell-joke in flight" in inflight
    assert "950 req/s, 0 errors" in inflight


def test_the_committed_charts_are_drawn_from_the_committed_results(tmp_path: Path) -> None:
    """Regenerate the docs' charts after changing results.json or charts.py (make charts):
    the SVGs carry no date, so the same results give the same bytes."""
    done = draw(COMMITTED / "results.json", tmp_path)
    assert done.returncode == 0, done.stderr
    stale = [c for c in CHARTS if (tmp_path / c).read_bytes() != (COMMITTED / c).read_bytes()]
    assert stale == []
