# SPDX-License-Identifier: Apache-2.0
"""checkov over the Dockerfile and every rendered Kubernetes overlay, in one run.

checkov is heavy and its dependencies would fight ours, so it runs in a throwaway
environment of its own (`uv tool run --from checkov==<pinned>`, pinned in conftest.py),
once for the module: tests/support/xdist_groups.py hands this whole module to one xdist
worker. Every failed check fails; a skip must carry its reason (`checkov.io/skipN:
CKV_K8S_xx=reason` on the object, `# checkov:skip=CKV_x:reason` in the Dockerfile)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import CHECKOV, DOCKERFILE, RENDERS, render

pytestmark = pytest.mark.timeout(900)  # the first run installs checkov


def _uv() -> str:
    # `uv run` names itself in UV; CI installs uv with pip (`python3 -m uv`).
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.fail("uv not found (neither $UV nor on PATH): checkov runs through `uv tool run`")
    return uv


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """checkov's results per framework (``dockerfile``, ``kubernetes``)."""
    scan = tmp_path_factory.mktemp("checkov")
    shutil.copy(DOCKERFILE, scan / "Dockerfile")
    work = tmp_path_factory.mktemp("kustomize")
    for name in RENDERS:
        (scan / f"{name}.yaml").write_text(yaml.safe_dump_all(render(name, work)))
    done = subprocess.run(
        [
            _uv(),
            "tool",
            "run",
            "--from",
            CHECKOV,
            "checkov",
            "--directory",
            str(scan),
            "--framework",
            "dockerfile",
            "kubernetes",
            "--output",
            "json",
            "--skip-download",
            "--compact",
        ],
        capture_output=True,
        text=True,
        timeout=850,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )
    # Exit 1 means "some check failed": the JSON says which. Anything else is an error.
    assert done.returncode in (0, 1), f"checkov: exit {done.returncode}\n{done.stderr[-3000:]}"
    parsed = json.loads(done.stdout)
    results = parsed if isinstance(parsed, list) else [parsed]
    return {r["check_type"]: r for r in results}


@pytest.mark.parametrize("framework", ["dockerfile", "kubernetes"])
def test_no_failed_checks(report: dict[str, dict[str, Any]], framework: str) -> None:
    assert framework in report, f"checkov scanned no {framework} file: {sorted(report)}"
    result = report[framework]
    failed = [
        f"{c['check_id']} {c['check_name']} — {c['file_path']} {c.get('resource', '')}"
        for c in result["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    assert result["summary"]["passed"] > 0


def test_every_render_was_scanned(report: dict[str, dict[str, Any]]) -> None:
    checked = report["kubernetes"]["results"]["passed_checks"]
    files = {Path(c["file_path"]).name for c in checked}
    assert files == {f"{name}.yaml" for name in RENDERS}, files
    resources = {c["resource"].split(".")[0] for c in checked}
    assert {"Deployment", "StatefulSet", "Service", "ServiceAccount"} <= resources, resources


def test_skips_carry_a_reason(report: dict[str, dict[str, Any]]) -> None:
    for result in report.values():
        for check in result["results"]["skipped_checks"]:
            reason = (check.get("check_result") or {}).get("suppress_comment", "")
            assert len(reason) > 20, f"{check['check_id']} skipped without a reason"
