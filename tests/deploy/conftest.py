# SPDX-License-Identifier: Apache-2.0
"""Shared by the deployment tests: the repository's paths, the Dockerfile parsed, and
``kubectl kustomize`` renders of the Kubernetes overlays."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
K8S = REPO / "deploy" / "k8s"

# The one place the checkov version is pinned (run in a throwaway environment of its own
# through `uv tool run`: its dependencies would fight ours).
CHECKOV = "checkov==3.3.30"

# What is rendered and checked: each overlay, and the prod overlay with every optional
# component (a kustomization made in a temporary directory, pointing back here).
RENDERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "dev": ("overlays/dev", ()),
    "prod": ("overlays/prod", ()),
    "dev+servicemonitor": ("overlays/dev", ("components/servicemonitor",)),
    "prod+all-components": (
        "overlays/prod",
        ("components/servicemonitor", "components/grpc-readiness", "components/external-redis"),
    ),
}


# --------------------------------------------------------------------- Dockerfile ---


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    args: str  # the rest of the (joined) line


def parse_dockerfile(path: Path = DOCKERFILE) -> list[Instruction]:
    """Instructions in order: comments dropped, continuation lines joined."""
    out: list[Instruction] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return out


def stages(instructions: Iterable[Instruction]) -> dict[str, list[Instruction]]:
    """Instructions per build stage, keyed by the stage's name (``AS name``)."""
    result: dict[str, list[Instruction]] = {}
    current: list[Instruction] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = ins.args.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else str(len(result))
            current = result.setdefault(name, [])
        current.append(ins)
    return result


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form instruction (a shell form fails the test)."""
    try:
        value = json.loads(args)
    except ValueError:
        pytest.fail(f"not exec form (a JSON array): {args}")
    assert isinstance(value, list), args
    assert all(isinstance(v, str) for v in value), args
    return value


def healthcheck(stage: list[Instruction]) -> tuple[dict[str, str], list[str]]:
    """The HEALTHCHECK's options (``--interval`` …) and its exec-form command."""
    (ins,) = [i for i in stage if i.keyword == "HEALTHCHECK"]
    options: dict[str, str] = {}
    rest = ins.args
    while rest.startswith("--"):
        option, _, rest = rest.partition(" ")
        name, _, value = option[2:].partition("=")
        options[name] = value
        rest = rest.lstrip()
    keyword, _, command = rest.partition(" ")
    assert keyword.upper() == "CMD", ins.args
    return options, exec_form(command)


def env_of(stage: list[Instruction]) -> dict[str, str]:
    """The stage's ENV, in ``KEY=value`` form (later values win)."""
    env: dict[str, str] = {}
    for ins in stage:
        if ins.keyword == "ENV":
            for word in shlex.split(ins.args):
                key, sep, value = word.partition("=")
                assert sep, f"ENV in the legacy 'KEY value' form: {ins.args}"
                env[key] = value
    return env


# --------------------------------------------------------------------- kustomize ---


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail(
            "kubectl not found on PATH: the Kubernetes checks need it (CI has it)", pytrace=False
        )
    return path


def render(name: str, workdir: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize`` of one of RENDERS, as a list of objects."""
    overlay, components = RENDERS[name]
    target = K8S / overlay
    if components:
        # As a user adds them: the overlay plus `components:`, in the overlay's namespace.
        # kustomize refuses absolute paths to other roots: point back relatively.
        target = workdir / f"render-{name}"
        target.mkdir(parents=True, exist_ok=True)
        rel = lambda p: os.path.relpath(K8S / p, target)  # noqa: E731
        own = yaml.safe_load((K8S / overlay / "kustomization.yaml").read_text())
        (target / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "namespace": own["namespace"],
                    "resources": [rel(overlay)],
                    "components": [rel(c) for c in components],
                }
            )
        )
    done = subprocess.run(
        [kubectl(), "kustomize", str(target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"kubectl kustomize {overlay} {components}: {done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    workdir = tmp_path_factory.mktemp("kustomize")
    return {name: render(name, workdir) for name in RENDERS}


def only(objects: Iterable[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]
