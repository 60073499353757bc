# SPDX-License-Identifier: Apache-2.0
"""The wheels a user installs: the kit's ships no sample, and each carries its data files.

Built for real with ``uv build`` (the same backend a release uses), then read as zip files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def uv() -> str:
    """The uv that runs the tests (``uv run`` exports it as ``UV``), else one on PATH."""
    found = os.environ.get("UV") or shutil.which("uv")
    assert found, "uv is needed to build the wheels (the README's commands install it)"
    return found


def build_wheel(project: Path, out: Path) -> list[str]:
    subprocess.run(
        [uv(), "build", "--wheel", "--quiet", "--out-dir", str(out), str(project)],
        check=True,
        timeout=300,
    )
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


@pytest.fixture(scope="module")
def kit_wheel(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return build_wheel(ROOT, tmp_path_factory.mktemp("kit"))


@pytest.fixture(scope="module")
def sample_wheel(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return build_wheel(ROOT / "apps" / "endpoints-hello", tmp_path_factory.mktemp("sample"))


def test_the_kit_wheel_ships_no_sample(kit_wheel: list[str]) -> None:
    tops = {name.split("/")[0] for name in kit_wheel}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"genkit_endpoints"}
    assert not [n for n in kit_wheel if "endpoints_hello" in n]
    entry_points = [n for n in kit_wheel if n.endswith("entry_points.txt")]
    assert not entry_points, "the kit installs no command; apps bring their own"


def test_the_kit_wheel_carries_its_data_files(kit_wheel: list[str]) -> None:
    lua = {Path(n).name for n in kit_wheel if n.startswith("genkit_endpoints/policies/lua/")}
    source = {p.name for p in (ROOT / "src/genkit_endpoints/policies/lua").glob("*.lua")}
    assert lua == source
    assert "genkit_endpoints/py.typed" in kit_wheel


def test_the_sample_wheel_carries_prompts_protos_and_its_command(
    sample_wheel: list[str],
) -> None:
    sample = ROOT / "apps/endpoints-hello/src/endpoints_hello"
    for folder in ("prompts", "protos"):
        expected = {p.name for p in (sample / folder).iterdir() if p.is_file()}
        shipped = {Path(n).name for n in sample_wheel if n.startswith(f"endpoints_hello/{folder}/")}
        assert shipped == expected, folder
    assert not [n for n in sample_wheel if n.startswith("genkit_endpoints/")]
    assert any(n.endswith("entry_points.txt") for n in sample_wheel)
