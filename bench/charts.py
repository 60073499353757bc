# SPDX-License-Identifier: Apache-2.0
"""Draw the benchmark charts of the docs site from the benches' own JSON results.

    python bench/charts.py                            # redraw from docs/benchmarks/results.json
    python bench/charts.py --collect bench/results    # first combine run.py's and
                                                      # resilience.py's JSON into it

The results file holds ``run`` (what ``run.py --output`` writes) and ``resilience`` (what
``resilience.py --output`` writes; only its ``inflight`` part is drawn). Three SVGs come
out: req/s of bare, naive and ours per server and for gRPC (``throughput.svg``), the
latency percentile curve of each app on each endpoint (``latency.svg``), and the run with
1 000 requests in flight (``inflight.svg``). The SVGs are deterministic — no date, fixed
element ids — so regenerating from the same results changes no byte.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "benchmarks" / "results.json"
CHARTS = ("throughput.svg", "latency.svg", "inflight.svg")
APPS = ("bare", "naive", "ours")
COLOURS = {"bare": "#9e9e9e", "naive": "#f0a340", "ours": "#3f6fd8"}
TARGET_COLOUR = "#c0392b"
SUITE_ORDER = ("uvicorn", "granian", "hypercorn", "grpc")
# The in-flight run's targets, as resilience.py judges them.
INFLIGHT_MAX_P99_MS = 1200.0
INFLIGHT_MAX_RSS_GROWTH_MIB = 100.0


def collect(results_dir: Path) -> dict[str, Any]:
    """One results document from ``latest.json`` and ``resilience.json`` in ``results_dir``."""
    doc: dict[str, Any] = {"run": json.loads((results_dir / "latest.json").read_text())}
    resilience = results_dir / "resilience.json"
    if resilience.exists():
        doc["resilience"] = {"inflight": json.loads(resilience.read_text())["inflight"]}
    return doc


def _suites(run: dict[str, Any]) -> list[str]:
    known = [s for s in SUITE_ORDER if s in run["summary"]]
    return known + sorted(set(run["summary"]) - set(known))


def latency_curve(run: dict[str, Any], suite: str, app: str, endpoint: str) -> dict[float, float]:
    """Percentile → ms for one app on one endpoint: the median over rounds of every
    percentile all rounds reported, else the summary's p50 and p99."""
    rounds = run.get("rounds", {}).get(suite, {}).get(app, {}).get(endpoint, [])
    curves = [r.get("percentiles_ms") or {} for r in rounds]
    common = set.intersection(*(set(c) for c in curves)) if curves else set()
    if common:
        return {float(q): statistics.median(c[q] for c in curves) for q in common}
    summary = run["summary"][suite][endpoint][app]
    return {50.0: summary["p50_ms"], 99.0: summary["p99_ms"]}


def _nines(q: float) -> float:
    """Where percentile ``q`` sits on an axis that gives p90, p99, p99.9 equal room."""
    return -math.log10(1 - q / 100)


def _pyplot() -> Any:
    import matplotlib as mpl

    mpl.use("Agg")  # files only: no display, no GUI toolkit
    mpl.rcParams.update(
        {
            "svg.hashsalt": "genkit-endpoints",  # stable element ids
            "svg.fonttype": "none",  # text stays text: small, searchable files
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return path


def throughput(plt: Any, run: dict[str, Any], out: Path) -> Path:
    suites = _suites(run)
    fig, axes = plt.subplots(1, len(suites), figsize=(3.2 * len(suites), 3.4), squeeze=False)
    for ax, suite in zip(axes[0], suites, strict=True):
        endpoints = list(run["summary"][suite])
        width = 0.8 / len(APPS)
        for i, app in enumerate(APPS):
            xs = [e for e, ep in enumerate(endpoints) if app in run["summary"][suite][ep]]
            values = [run["summary"][suite][endpoints[x]][app]["rps"] for x in xs]
            if not xs:
                continue
            bars = ax.bar(
                [x + (i - 1) * width for x in xs], values, width, label=app, color=COLOURS[app]
            )
            ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
        ax.set_xticks(range(len(endpoints)), endpoints)
        ax.set_title("gRPC" if suite == "grpc" else suite)
        ax.set_ylabel("calls/s" if suite == "grpc" else "req/s")
    _legend(fig, axes)
    fig.suptitle(
        "Throughput: bare, naive and ours on each server (higher is better)", x=0.02, ha="left"
    )
    return _save(plt, fig, out / "throughput.svg")


def _legend(fig: Any, axes: Any) -> None:
    """One legend for the figure, top right, with every app that was drawn."""
    drawn: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            drawn.setdefault(label, handle)
    fig.legend(drawn.values(), drawn.keys(), loc="upper right", ncol=len(drawn), frameon=False)


def _log_ms_axis(ax: Any, ticker: Any) -> None:
    """A log axis labelled in plain numbers; over more than a decade only 1, 2 and 5 of
    each decade are labelled, so the labels do not overlap."""
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    wide = math.log10(high / low) > 1

    def label(value: float, _: int) -> str:
        lead = round(value / 10 ** math.floor(math.log10(value)))
        return f"{value:g}" if not wide or lead in {1, 2, 5} else ""

    ax.yaxis.set_major_formatter(ticker.FuncFormatter(label))
    ax.yaxis.set_minor_formatter(ticker.FuncFormatter(label))
    ax.tick_params(axis="y", which="minor", labelsize=7)


def latency(plt: Any, run: dict[str, Any], out: Path) -> Path:
    from matplotlib import ticker

    suites = _suites(run)
    rows = max(len(run["summary"][s]) for s in suites)
    fig, axes = plt.subplots(
        rows, len(suites), figsize=(3.2 * len(suites), 2.8 * rows), squeeze=False
    )
    ticks = [50.0, 90.0, 99.0, 99.9]
    for col, suite in enumerate(suites):
        endpoints = list(run["summary"][suite])
        for row in range(rows):
            ax = axes[row][col]
            if row >= len(endpoints):
                ax.set_visible(False)
                continue
            endpoint = endpoints[row]
            for app in APPS:
                if app not in run["summary"][suite][endpoint]:
                    continue
                curve = sorted(latency_curve(run, suite, app, endpoint).items())
                ax.plot(
                    [_nines(q) for q, _ in curve],
                    [ms for _, ms in curve],
                    marker="o",
                    markersize=3,
                    label=app,
                    color=COLOURS[app],
                )
            _log_ms_axis(ax, ticker)
            ax.set_xticks([_nines(q) for q in ticks], [f"p{q:g}" for q in ticks])
            ax.set_xlim(_nines(45), _nines(99.95))
            ax.set_title(endpoint if suite == "grpc" else f"{suite}: {endpoint}")
            ax.set_ylabel("ms")
            ax.grid(axis="y", which="both", alpha=0.3)
    _legend(fig, axes)
    fig.suptitle("Latency percentiles under a closed loop (lower is better)", x=0.02, ha="left")
    return _save(plt, fig, out / "latency.svg")


def _target_line(ax: Any, y: float, text: str) -> None:
    """A target as a dashed red line across ``ax``, labelled just above its left end."""
    ax.axhline(y, color=TARGET_COLOUR, linestyle="--", linewidth=1)
    ax.annotate(
        text, (0, y), textcoords="offset points", xytext=(0, 3), fontsize=7, color=TARGET_COLOUR
    )


def inflight(plt: Any, doc: dict[str, Any], out: Path) -> Path:
    fig, (lat, mem) = plt.subplots(1, 2, figsize=(8.0, 3.2))
    curve = {float(q): ms for q, ms in (doc.get("percentiles_ms") or {}).items()}
    curve = curve or {50.0: doc["p50_ms"], 99.0: doc["p99_ms"]}
    points = sorted(curve.items())
    labels = [f"p{q:g}" for q, _ in points] + ["max"]
    values = [ms for _, ms in points] + [doc["max_ms"]]
    bars = lat.bar(labels, values, color=COLOURS["ours"])
    lat.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    _target_line(lat, INFLIGHT_MAX_P99_MS, f"p99 target {INFLIGHT_MAX_P99_MS:.0f} ms")
    if model := doc.get("model_latency_ms"):
        lat.axhline(model, color="#555555", linestyle=":", linewidth=1)
        lat.annotate(
            "the model alone",
            (len(labels) - 1, model),
            textcoords="offset points",
            xytext=(0, -10),
            fontsize=7,
            ha="right",
            color="#555555",
        )
    lat.set_ylabel("ms")
    errors = doc.get("errors", {})
    failed = sum(errors.values()) if isinstance(errors, dict) else int(errors)
    lat.set_title(f"latency: {doc['rps']:.0f} req/s, {failed} errors")
    rss = [doc["rss_before_mib"], doc["rss_peak_mib"], doc["rss_after_mib"]]
    bars = mem.bar(["before", "peak", "after"], rss, color=COLOURS["naive"])
    mem.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    limit = doc["rss_before_mib"] + INFLIGHT_MAX_RSS_GROWTH_MIB
    _target_line(mem, limit, f"before + {INFLIGHT_MAX_RSS_GROWTH_MIB:.0f} MiB target")
    mem.set_ylabel("MiB")
    mem.set_title("server resident memory")
    n, model = doc.get("in_flight"), doc.get("model_latency_ms")
    setup = f"{n:,} ".replace(",", " ") if n else ""
    fig.suptitle(
        f"{setup}POST /tell-joke in flight, one process"
        + (f", model latency {model:.0f} ms" if model else "")
    )
    return _save(plt, fig, out / "inflight.svg")


def draw(results: dict[str, Any], out: Path) -> list[Path]:
    """Every chart the results have data for, as SVG files in ``out``."""
    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    written = [throughput(plt, results["run"], out), latency(plt, results["run"], out)]
    if "inflight" in results.get("resilience", {}):
        written.append(inflight(plt, results["resilience"]["inflight"], out))
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--results", type=Path, default=RESULTS, help="the results JSON to draw")
    p.add_argument("--out", type=Path, help="folder for the SVGs (default: beside --results)")
    p.add_argument(
        "--collect",
        type=Path,
        metavar="DIR",
        help="first write --results from DIR/latest.json and DIR/resilience.json",
    )
    args = p.parse_args(argv)
    if args.collect is not None:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(collect(args.collect), indent=1) + "\n")
        print(f"charts: results collected into {args.results}")
    results = json.loads(args.results.read_text())
    for path in draw(results, args.out or args.results.parent):
        print(f"charts: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
