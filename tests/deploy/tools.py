# SPDX-License-Identifier: Apache-2.0
"""Running the check tools: terraform from PATH, the rest pinned in ``scripts/tools.toml``.

A missing tool fails the check with one line naming what to install: a check that
quietly skips on a machine without the tool would pass where nothing was checked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS_FILE = ROOT / "scripts" / "tools.toml"
# Set by .ci/run on machines that cannot reach a tool's download site; see README.
OFFLINE_OK = "SUPPLY_CHAIN_OFFLINE_OK"


def pinned(name: str) -> str:
    """``name==version`` as pinned in scripts/tools.toml."""
    with TOOLS_FILE.open("rb") as f:
        versions: dict[str, str] = tomllib.load(f)["tools"]
    return f"{name}=={versions[name]}"


def uv() -> list[str]:
    """The uv that runs us (``uv run`` names itself in ``UV``), else one on PATH."""
    if found := os.environ.get("UV") or shutil.which("uv"):
        return [found]
    return [sys.executable, "-m", "uv"]


def uv_tool(package: str, command: str, *args: str) -> list[str]:
    """The command line running ``command`` from the pinned ``package`` in its own env."""
    return [*uv(), "tool", "run", "--from", pinned(package), command, *args]


def require_terraform() -> str:
    path = shutil.which("terraform")
    if path is None:
        pytest.fail(
            "terraform not found on PATH: install Terraform 1.5 or newer "
            "(https://developer.hashicorp.com/terraform/install)",
            pytrace=False,
        )
    return path


def run(cmd: list[str], cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "TF_IN_AUTOMATION": "1"}
    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
