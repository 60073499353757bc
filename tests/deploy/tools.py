# SPDX-License-Identifier: Apache-2.0
"""Running the check tools: terraform from PATH, the rest pinned in ``scripts/tools.toml``.

A missing tool fails the check with one line naming what to install: a check that
quietly skips on a machine without the tool would pass where nothing was checked.
The pins and the uv command come from ``scripts/supply.py``, shared with the Makefile's
supply-chain scripts.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def script(name: str) -> ModuleType:
    """A module of ``scripts/`` (they import each other by plain name, as when run)."""
    scripts = str(ROOT / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    return importlib.import_module(name)


supply = script("supply")
OFFLINE_OK: str = supply.OFFLINE_OK
uv_tool = supply.uv_tool


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
