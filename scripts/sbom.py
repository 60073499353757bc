# SPDX-License-Identifier: Apache-2.0
"""Write a CycloneDX SBOM of the lock to ``build/sbom.cdx.json`` and check it.

The SBOM is made from the exported lock (with hashes), not from an installed
environment, so it lists exactly what the lock pins, for every platform, whatever the
machine it is built on. Its root component is our project (from pyproject.toml).
cyclonedx-py validates it against the CycloneDX schema; this script then checks that
every locked package is in it, at the locked version.

Usage: ``uv run python scripts/sbom.py [--output FILE]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from supply import BUILD, FAILED, OK, ROOT, export_lock, finish, normalize, uv_tool

CHECK = "SBOM"
SPEC_VERSION = "1.6"


def missing_components(sbom: dict[str, object], locked: list[tuple[str, str]]) -> list[str]:
    """Locked ``name==version`` pairs the SBOM does not list."""
    components = sbom.get("components")
    if not isinstance(components, list):
        return sorted(f"{n}=={v}" for n, v in set(locked))
    listed = {(normalize(c["name"]), c.get("version", "")) for c in components}
    return sorted(f"{n}=={v}" for n, v in set(locked) - listed)


def build(output: Path) -> int:
    requirements = output.parent / "requirements-hashes.txt"
    locked = export_lock(requirements, hashes=True)
    cmd = uv_tool("cyclonedx-bom", "cyclonedx-py", "requirements", str(requirements))
    cmd += ["--pyproject", str(ROOT / "pyproject.toml"), "--spec-version", SPEC_VERSION]
    cmd += ["--output-reproducible", "--output-format", "JSON", "--output-file", str(output)]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        print(f"cyclonedx-py failed:\n{result.stderr[-2000:]}")
        return FAILED
    sbom = json.loads(output.read_text())
    if sbom.get("bomFormat") != "CycloneDX" or sbom.get("specVersion") != SPEC_VERSION:
        print(f"{output}: not a CycloneDX {SPEC_VERSION} document")
        return FAILED
    if missing := missing_components(sbom, locked):
        print(f"{output}: locked packages missing from the SBOM: {', '.join(missing)}")
        return FAILED
    print(f"{CHECK}: {output} lists all {len(locked)} locked packages")
    return OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=BUILD / "sbom.cdx.json")
    args = parser.parse_args(argv)
    output: Path = args.output.resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    return finish(CHECK, build(output))


if __name__ == "__main__":
    sys.exit(main())
