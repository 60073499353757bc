"""The kit's public API: one documented list, importable cheaply, used by its consumers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import genkit_endpoints

ROOT = Path(__file__).resolve().parents[2]


def test_all_lists_exactly_the_exported_names_and_each_resolves() -> None:
    assert sorted(genkit_endpoints.__all__) == sorted(genkit_endpoints._EXPORTS)
    for name in genkit_endpoints.__all__:
        assert getattr(genkit_endpoints, name) is not None, name


def test_importing_the_package_imports_neither_genkit_nor_a_server() -> None:
    code = (
        "import sys, genkit_endpoints; "
        "from genkit_endpoints import App, Settings, load_settings, serve; "
        "print(sorted(m for m in ('genkit', 'uvicorn', 'grpc', 'fastapi') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        genkit_endpoints.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018


def _private_imports(path: Path) -> list[str]:
    """Modules under genkit_endpoints.* that ``path`` imports (the package itself is fine)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [n for n in names if n.startswith("genkit_endpoints.")]
    return found


def test_the_sample_deploy_bench_and_example_use_only_the_public_api() -> None:
    files = [
        *sorted((ROOT / "src" / "endpoints_hello").glob("*.py")),
        ROOT / "deploy" / "gunicorn.conf.py",
        *sorted((ROOT / "bench").glob("*.py")),
        *sorted((ROOT / "examples").glob("*.py")),
    ]
    offenders = {str(f.relative_to(ROOT)): _private_imports(f) for f in files}
    assert {f: m for f, m in offenders.items() if m} == {}
