# SPDX-License-Identifier: Apache-2.0
"""A dependency outside the range the kit's hooks were checked against stops the command
line with one line and exit code 2, before anything is served or any worker starts.

The installed version is faked at the true boundary, package metadata: a
``<name>-<version>.dist-info`` directory placed first on ``PYTHONPATH`` is the
distribution ``importlib.metadata`` finds first, while the real package still imports.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.server import run_cli


def _fake_version(root: Path, dist: str, version: str) -> dict[str, str]:
    info = root / f"{dist}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    return {"PYTHONPATH": str(root)}


@pytest.mark.parametrize(
    ("dist", "version", "args", "needs"),
    [
        ("uvicorn", "0.99.0", ["--server", "uvicorn"], ">=0.34,<0.55"),
        ("hypercorn", "0.19.0", ["--server", "hypercorn", "--workers", "2"], ">=0.18,<0.19"),
        ("granian", "3.0.0", ["--server", "granian"], ">=2.2,<2.9"),
        # Several workers: the supervisor does not build the service, yet still refuses.
        ("genkit", "0.13.0", ["--server", "uvicorn", "--workers", "2"], ">=0.12,<0.13"),
        ("genkit", "0.11.0", ["--server", "uvicorn"], ">=0.12,<0.13"),
    ],
)
def test_an_unsupported_dependency_is_one_line_and_exit_2(
    tmp_path: Path, dist: str, version: str, args: list[str], needs: str
) -> None:
    env = _fake_version(tmp_path / "site", dist, version)
    proc = run_cli([*args, "--port", "1", "--no-grpc"], env=env, cwd=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    (line,) = proc.stderr.strip().splitlines()  # one line, no traceback
    prefix = f"endpoints-hello: error: {dist} {version} is not supported (needs {needs}): "
    assert line.startswith(prefix), line
    assert line.endswith("; install a version in that range")
