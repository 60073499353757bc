# SPDX-License-Identifier: Apache-2.0
"""The kit's import graph: layers only import downwards, no cycles, and code outside the
kit uses only its public API.

The graph is read from the source with ``ast`` (every import statement, including the
ones inside functions and ``TYPE_CHECKING`` blocks: a lazy import still couples two
modules), so the test needs no imports of the kit and sees exactly what a reader sees.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "src" / "genkit_endpoints"
PACKAGE = "genkit_endpoints"

# Lower layers never import higher ones. http and grpc are peers: two transports over the
# same core, neither imports the other. compat (third-party internals) is the floor.
LAYERS: dict[str, int] = {
    "compat": 0,
    "core": 1,
    "security": 2,
    "telemetry": 3,
    "policies": 4,
    "model": 5,
    "http": 6,
    "grpc": 6,
    "serving": 7,
}
PUBLIC_FACADE = 8  # genkit_endpoints/__init__.py re-exports from every layer


def module_name(path: Path) -> str:
    rel = path.relative_to(KIT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def kit_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(KIT.rglob("*.py"))}


def imported(path: Path, name: str, is_package: bool) -> Iterator[tuple[str, int]]:
    """Every kit module ``path`` imports, with the line of the import."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                # `from pkg import submodule` imports the submodule, not just the package
                yield f"{target}.{alias.name}", node.lineno


def resolve(target: str, modules: dict[str, Path]) -> str:
    """The module a dotted import lands in (strip attribute names)."""
    while target not in modules and "." in target:
        target = target.rpartition(".")[0]
    return target


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return PUBLIC_FACADE
    return LAYERS[parts[1]]


def graph() -> dict[str, set[tuple[str, int]]]:
    modules = kit_modules()
    edges: dict[str, set[tuple[str, int]]] = {}
    for name, path in modules.items():
        deps = {
            (resolve(t, modules), line)
            for t, line in imported(path, name, path.name == "__init__.py")
        }
        edges[name] = {(d, line) for d, line in deps if d != name}
    return edges


def test_every_kit_folder_has_a_layer() -> None:
    folders = {p.name for p in KIT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(LAYERS), "add the new folder to LAYERS (and docs/architecture.md)"
    loose = {p.name for p in KIT.glob("*.py")} - {"__init__.py"}
    assert not loose, f"modules belong in a layer folder: {sorted(loose)}"


def test_no_layer_imports_upwards() -> None:
    wrong = []
    for src, deps in graph().items():
        for dst, line in deps:
            if dst == PACKAGE and src != PACKAGE:
                wrong.append(f"{src}:{line} imports the public facade {dst}")
                continue
            lsrc, ldst = layer(src), layer(dst)
            peers = lsrc == ldst and src.split(".")[1] != dst.split(".")[1]
            if ldst > lsrc or peers:
                wrong.append(f"{src}:{line} imports {dst}")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycles() -> None:
    edges = {src: {d for d, _ in deps} for src, deps in graph().items()}
    # Importing a package runs its __init__, so a submodule importing its own package's
    # __init__ only matters when that __init__ imports it back; a plain DFS sees that.
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


OUTSIDE = ["apps", "deploy", "bench", "examples", "tests/example_app"]


def outside_files() -> Iterator[Path]:
    for folder in OUTSIDE:
        base = ROOT / folder
        if base.is_dir():
            yield from (p for p in sorted(base.rglob("*.py")) if "generated" not in p.parts)


@pytest.mark.parametrize("path", list(outside_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_code_outside_the_kit_imports_only_its_public_api(path: Path) -> None:
    private = [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for target, line in imported(path, "outside", is_package=False)
        if resolve(target, kit_modules()) != PACKAGE
    ]
    assert not private, "\n".join(private)
