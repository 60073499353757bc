# SPDX-License-Identifier: Apache-2.0
"""Audit every locked dependency for known vulnerabilities with pip-audit.

Every pin of the lock (all extras, all groups, every platform and Python) is audited as
it is, without resolving anything (``--no-deps``) and without its environment markers
(pip-audit would drop the pins for other platforms): the versions checked are exactly
the ones we ship. Accepted findings
live in ``scripts/audit-exceptions.toml``, each with its reason.

pip-audit asks PyPI's per-release JSON API (``-s pypi``) or OSV (``-s osv``). When the
service cannot be reached — or answers for some packages only — the audit did not
happen, and this says so ("vulnerability audit NOT run") instead of reporting "no
known vulnerabilities".

Usage: ``uv run python scripts/audit_deps.py [--service pypi|osv]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from supply import BUILD, FAILED, NOT_RUN, OK, ROOT, export_lock, finish, normalize, uv_tool

CHECK = "vulnerability audit"
EXCEPTIONS = ROOT / "scripts" / "audit-exceptions.toml"


def load_exceptions(path: Path = EXCEPTIONS) -> dict[str, str]:
    """Accepted vulnerability id -> package; refuses entries without a reason."""
    with path.open("rb") as f:
        entries = tomllib.load(f).get("exception", [])
    out: dict[str, str] = {}
    for entry in entries:
        vuln, package, reason = (str(entry.get(k, "")).strip() for k in ("id", "package", "reason"))
        if not (vuln and package and reason):
            raise SystemExit(f"{path.name}: every exception needs id, package and reason: {entry}")
        out[vuln] = normalize(package)
    return out


def batches(locked: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The locked pins in groups with each name at most once: the lock may pin two
    versions of a package (by Python version or platform), and one requirements file
    cannot hold both."""
    groups: list[list[tuple[str, str]]] = []
    for pin in sorted(set(locked)):
        for group in groups:
            if all(name != pin[0] for name, _ in group):
                group.append(pin)
                break
        else:
            groups.append([pin])
    return groups


def run_pip_audit(
    pins: list[tuple[str, str]], index: int, service: str
) -> tuple[list[dict[str, Any]], str]:
    """pip-audit's report on ``pins`` (written without environment markers, so packages
    locked for another platform or Python are audited too), or why there is none."""
    requirements = BUILD / f"audit-requirements-{index}.txt"
    requirements.write_text("".join(f"{name}=={version}\n" for name, version in pins))
    report = BUILD / f"pip-audit-{index}.json"
    report.unlink(missing_ok=True)
    cmd = uv_tool("pip-audit", "pip-audit", "--requirement", str(requirements), "--no-deps")
    cmd += ["--disable-pip", "--vulnerability-service", service, "--progress-spinner", "off"]
    cmd += ["--format", "json", "--output", str(report)]
    for vuln in load_exceptions():
        cmd += ["--ignore-vuln", vuln]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603
    if not report.exists():
        # No report at all: pip-audit could not talk to the service (or not start).
        last = (result.stderr.strip().splitlines() or ["pip-audit wrote no report"])[-1]
        return [], f"pip-audit could not query {service}: {last}"
    dependencies: list[dict[str, Any]] = json.loads(report.read_text())["dependencies"]
    return dependencies, ""


def audit(service: str) -> tuple[int, str]:
    locked = export_lock(BUILD / "requirements.txt", hashes=False)
    exceptions = load_exceptions()
    dependencies: list[dict[str, Any]] = []
    for index, pins in enumerate(batches(locked)):
        reported, why_not = run_pip_audit(pins, index, service)
        if why_not:
            return NOT_RUN, why_not
        dependencies += reported
    skipped = [d["name"] for d in dependencies if "skip_reason" in d]
    if skipped:
        # The service answered nothing for these, so nothing is known about them.
        sample = ", ".join(skipped[:5]) + (" …" if len(skipped) > 5 else "")
        return NOT_RUN, (
            f"the {service} vulnerability service gave no answer for {len(skipped)} of "
            f"{len(dependencies)} locked packages ({sample})"
        )
    audited = {(normalize(d["name"]), d["version"]) for d in dependencies}
    if missing := sorted(f"{n}=={v}" for n, v in set(locked) - audited):
        return NOT_RUN, f"pip-audit did not report on {', '.join(missing)}"
    found = [
        f"{d['name']} {d['version']}: {v['id']} (fixed in {', '.join(v['fix_versions']) or '—'})"
        for d in dependencies
        for v in d.get("vulns", [])
    ]
    if found:
        print("Known vulnerabilities in locked dependencies:", *found, sep="\n  ")
        print(f"Upgrade them, or accept one with a reason in {EXCEPTIONS.relative_to(ROOT)}.")
        return FAILED, ""
    print(f"{CHECK}: {len(audited)} locked packages, no known vulnerabilities", end="")
    print(f" ({len(exceptions)} accepted, see {EXCEPTIONS.name})" if exceptions else "")
    return OK, ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--service", choices=["pypi", "osv"], default="pypi")
    args = parser.parse_args(argv)
    status, reason = audit(args.service)
    return finish(CHECK, status, reason)


if __name__ == "__main__":
    sys.exit(main())
