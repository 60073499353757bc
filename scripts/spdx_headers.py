# SPDX-License-Identifier: Apache-2.0
"""Check or add the ``SPDX-License-Identifier`` line at the top of our source files.

The identifier is the project's own licence (``project.license`` in pyproject.toml).
It goes on the first comment line, after the lines that must stay first: a shebang, a
Python encoding declaration, a Dockerfile parser directive. Generated code (protoc
output under ``generated/``) is left alone: it is rewritten on every regeneration.

Usage: ``python scripts/spdx_headers.py --check`` (lists files without it, exits 1) or
``--fix`` (adds it). ``--root DIR`` works on another tree.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Where our code lives, and which files in it carry the header.
DIRS = ("src", "apps", "tests", "bench", "scripts", "deploy", "examples", ".github", ".ci")
TOP_LEVEL = ("Makefile", "Containerfile", "Dockerfile")
HASH_SUFFIXES = {".py", ".sh", ".tf", ".tfvars", ".toml", ".yml", ".yaml", ".cfg"}
SLASH_SUFFIXES = {".proto"}
HASH_NAMES = {"Makefile", "Containerfile", "Dockerfile", "run"}
SKIP_PARTS = {"generated", "__pycache__", ".venv", ".terraform", "node_modules", "build"}
# Lines that must stay above the header.
_KEEP_FIRST = re.compile(
    rb"#!|#.*coding[:=]|#\s*(syntax|escape|check)\s*=",
)
_HEAD_LINES = 5  # the header counts only near the top


def license_id(root: Path) -> str:
    with (root / "pyproject.toml").open("rb") as f:
        value = tomllib.load(f)["project"]["license"]
    if not isinstance(value, str):  # the old table form: {text = "..."} / {file = "..."}
        raise SystemExit("pyproject.toml: project.license must be an SPDX expression")
    return value


def comment_prefix(path: Path) -> str | None:
    if path.suffix in SLASH_SUFFIXES:
        return "//"
    if path.suffix in HASH_SUFFIXES or path.name in HASH_NAMES:
        return "#"
    return None


def candidates(root: Path) -> Iterator[Path]:
    for name in TOP_LEVEL:
        if (root / name).is_file():
            yield root / name
    for top in DIRS:
        base = root / top
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(root).parts
            if path.is_file() and not SKIP_PARTS.intersection(rel) and comment_prefix(path):
                yield path


def has_header(data: bytes, spdx: str) -> bool:
    tag = f"SPDX-License-Identifier: {spdx}".encode()
    return any(tag in line for line in data.splitlines()[:_HEAD_LINES])


def with_header(data: bytes, header: bytes) -> bytes:
    lines = data.splitlines(keepends=True)
    keep = 0
    while keep < len(lines) and keep < 2 and _KEEP_FIRST.match(lines[keep]):
        keep += 1
    if keep and not lines[keep - 1].endswith(b"\n"):
        lines[keep - 1] += b"\n"
    return b"".join([*lines[:keep], header, *lines[keep:]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="list files without the header")
    mode.add_argument("--fix", action="store_true", help="add the header where it is missing")
    parser.add_argument("--root", type=Path, default=ROOT, help="tree to work on")
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    spdx = license_id(root)
    missing = [p for p in candidates(root) if not has_header(p.read_bytes(), spdx)]
    if args.fix:
        for path in missing:
            header = f"{comment_prefix(path)} SPDX-License-Identifier: {spdx}\n".encode()
            path.write_bytes(with_header(path.read_bytes(), header))
            print(f"added: {path.relative_to(root)}")
        return 0
    if missing:
        print(f"{len(missing)} file(s) without 'SPDX-License-Identifier: {spdx}':")
        for path in missing:
            print(f"  {path.relative_to(root)}")
        print("Add it with: python scripts/spdx_headers.py --fix")
        return 1
    print(f"SPDX headers: every checked file says {spdx}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
