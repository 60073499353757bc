# SPDX-License-Identifier: Apache-2.0
"""The version ranges of ``genkit_endpoints.compat``: how a version is compared, and that
the ranges the start-up check enforces are the ones pyproject.toml declares."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from genkit_endpoints import compat
from genkit_endpoints.compat import (
    SUPPORTED,
    UnsupportedDependency,
    require_supported,
    require_version,
)

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


@pytest.mark.parametrize(
    ("version", "supported"),
    [
        ("0.33.99", False),
        ("0.34", True),
        ("0.34.0", True),
        ("0.54.7.post1", True),
        ("0.55.0rc1", False),  # a pre-release of the first unsupported version
        ("0.55", False),
        ("0.100.0", False),  # compared as numbers, not text
        ("1.0.0", False),
    ],
)
def test_a_version_is_compared_release_number_by_number(
    monkeypatch: pytest.MonkeyPatch, version: str, supported: bool
) -> None:
    monkeypatch.setattr(compat, "installed_version", lambda dist: version)
    if supported:
        assert require_version("somelib", "0.34", "0.55", "why") == version
    else:
        with pytest.raises(UnsupportedDependency):
            require_version("somelib", "0.34", "0.55", "why")


def test_the_refusal_is_one_line_naming_the_version_the_range_and_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(compat, "installed_version", lambda dist: "0.99.0")
    with pytest.raises(UnsupportedDependency) as err:
        require_version("uvicorn", "0.34", "0.40", "the kit subclasses its protocol")
    assert str(err.value) == (
        "uvicorn 0.99.0 is not supported (needs >=0.34,<0.40): "
        "the kit subclasses its protocol; install a version in that range"
    )
    assert (err.value.dist, err.value.version) == ("uvicorn", "0.99.0")


def _declared() -> dict[str, str]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        specs += extra
    declared = {}
    for spec in specs:
        found = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*(.*)", spec)
        assert found is not None, spec
        declared[found.group(1).lower()] = found.group(2).replace(" ", "")
    return declared


@pytest.mark.parametrize("dist", sorted(SUPPORTED))
def test_pyproject_declares_the_range_the_start_up_check_enforces(
    monkeypatch: pytest.MonkeyPatch, dist: str
) -> None:
    lower, upper, _ = SUPPORTED[dist]
    spec = _declared()[dist]
    if spec.startswith("=="):  # an exact pin must lie inside the range
        pinned = spec.removeprefix("==")
        monkeypatch.setattr(compat, "installed_version", lambda dist: pinned)
        assert require_supported(dist) == pinned
    else:
        assert spec == f">={lower},<{upper}"
