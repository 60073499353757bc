# SPDX-License-Identifier: Apache-2.0
"""What the supply-chain scripts share: the lock export, pinned tools, exit statuses.

Every check ends with one of three statuses: 0 (checked, fine), 1 (checked, something
is wrong) or ``NOT_RUN`` (3: the check could not run, e.g. its vulnerability service is
unreachable). A check that could not run must never look like one that passed, so
``NOT_RUN`` fails too — unless ``SUPPLY_CHAIN_OFFLINE_OK=1`` says the machine is known
to be cut off (the local ``.ci/run`` sets it), in which case it is a loud warning.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
TOOLS_FILE = ROOT / "scripts" / "tools.toml"
OK, FAILED, NOT_RUN = 0, 1, 3
OFFLINE_OK = "SUPPLY_CHAIN_OFFLINE_OK"


def uv() -> list[str]:
    """The uv that runs us (``uv run`` names itself in ``UV``), else one on PATH."""
    if found := os.environ.get("UV") or shutil.which("uv"):
        return [found]
    return [sys.executable, "-m", "uv"]


def pinned(name: str) -> str:
    """``name==version`` as pinned in scripts/tools.toml."""
    with TOOLS_FILE.open("rb") as f:
        versions: dict[str, str] = tomllib.load(f)["tools"]
    return f"{name}=={versions[name]}"


def uv_tool(package: str, command: str, *args: str) -> list[str]:
    """The command line running ``command`` from the pinned ``package`` in its own env."""
    return [*uv(), "tool", "run", "--from", pinned(package), command, *args]


def export_lock(dest: Path, *, hashes: bool) -> list[tuple[str, str]]:
    """Write every locked third-party package (all extras and groups, every platform) to
    ``dest`` as requirements; return their (name, version) pairs.

    Our own workspace packages are left out: they are not dependencies, and they are
    installed from the working tree, not from an index.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*uv(), "export", "--frozen", "--all-extras", "--all-groups", "--no-emit-workspace"]
    cmd += ["--format", "requirements.txt", "--quiet", "--output-file", str(dest)]
    if not hashes:
        cmd.append("--no-hashes")
    subprocess.run(cmd, cwd=ROOT, check=True)  # noqa: S603 - fixed argv, no shell
    return locked_packages(dest)


def locked_packages(requirements: Path) -> list[tuple[str, str]]:
    """(name, version) of each ``name==version`` line; a name may appear with two
    versions when the lock picks by Python version or platform."""
    out: list[tuple[str, str]] = []
    for raw in requirements.read_text().splitlines():
        line = raw.split(";", 1)[0].split("\\", 1)[0].strip()
        if line and not line.startswith(("#", "-")) and "==" in line:
            name, version = line.split("==", 1)
            out.append((normalize(name), version.strip()))
    return out


def normalize(name: str) -> str:
    """A distribution name as the package index compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower().strip()


def finish(name: str, status: int, reason: str = "") -> int:
    """Report ``status`` for check ``name`` and turn it into the process's exit status."""
    if status == NOT_RUN:
        print(f"{name} NOT run: {reason}", file=sys.stderr)
        if os.environ.get(OFFLINE_OK) == "1":
            print(
                f"WARNING: {OFFLINE_OK}=1 — treating the missing {name} as a warning. "
                "CI must run it.",
                file=sys.stderr,
            )
            return OK
    return status
