# SPDX-License-Identifier: Apache-2.0
"""Check the licence of every locked dependency against ``scripts/licenses.toml``.

Run inside the project's environment (``uv run --all-extras``), where the locked
packages are installed: each one's licence is read from its own metadata — the SPDX
``License-Expression`` when it has one, else its ``License`` field or its trove
classifiers, translated by the file's aliases. Packages locked for another platform or
Python, which are not installed here, and packages whose metadata is unclear, are
listed in the file by hand with a reason. Anything unknown or not allowed fails.

Usage: ``uv run --all-extras python scripts/licenses.py``
"""

from __future__ import annotations

import importlib.metadata as md
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from supply import BUILD, FAILED, OK, ROOT, export_lock, finish, normalize

CHECK = "licence check"
POLICY = ROOT / "scripts" / "licenses.toml"
_TOKENS = re.compile(r"\(|\)|[A-Za-z0-9.+:-]+")


@dataclass(frozen=True)
class Policy:
    allowed: frozenset[str]
    aliases: dict[str, str]
    packages: dict[str, str]  # normalized name -> SPDX expression stated by hand
    # normalized name -> SPDX expression of a dev tool that is only ever run as a program
    # of its own (never imported, linked or shipped in the image): any licence may do
    programs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = POLICY) -> Policy:
        with path.open("rb") as f:
            data = tomllib.load(f)
        packages: dict[str, str] = {}
        for name, entry in data.get("packages", {}).items():
            if not str(entry.get("reason", "")).strip() or not entry.get("license"):
                raise SystemExit(f"{path.name}: [packages.{name}] needs license and reason")
            packages[normalize(name)] = entry["license"]
        programs: dict[str, str] = {}
        for name, entry in data.get("programs", {}).items():
            if not str(entry.get("reason", "")).strip() or not entry.get("license"):
                raise SystemExit(f"{path.name}: [programs.{name}] needs license and reason")
            programs[normalize(name)] = entry["license"]
        return cls(frozenset(data["allowed"]), dict(data.get("aliases", {})), packages, programs)


def permitted(expression: str, allowed: frozenset[str]) -> bool:
    """Whether an SPDX expression can be used under ``allowed``: one side of each OR,
    both sides of each AND; ``X WITH exception`` as X; ``X+`` as X."""
    tokens = _TOKENS.findall(expression)
    pos = 0

    def term() -> bool:
        nonlocal pos
        if pos >= len(tokens):
            raise ValueError(expression)
        word = tokens[pos]
        pos += 1
        if word == "(":
            value = either()
            if pos >= len(tokens) or tokens[pos] != ")":
                raise ValueError(expression)
            pos += 1
            return value
        value = word.removesuffix("+") in allowed
        if pos < len(tokens) and tokens[pos].upper() == "WITH":
            pos += 2  # the exception only adds permissions
        return value

    def both() -> bool:
        nonlocal pos
        value = term()
        while pos < len(tokens) and tokens[pos].upper() == "AND":
            pos += 1
            value = term() and value
        return value

    def either() -> bool:
        nonlocal pos
        value = both()
        while pos < len(tokens) and tokens[pos].upper() == "OR":
            pos += 1
            value = both() or value
        return value

    value = either()
    if pos != len(tokens):
        raise ValueError(expression)
    return value


def _field(meta: md.PackageMetadata, name: str) -> str:
    values = meta.get_all(name) or []
    return str(values[0]).strip() if values else ""


def declared(meta: md.PackageMetadata, policy: Policy) -> str | None:
    """The SPDX expression a package's metadata declares, None if it says nothing usable."""
    if expression := _field(meta, "License-Expression"):
        return expression
    field = _field(meta, "License")
    first_line = field.splitlines()[0].strip() if field else ""
    if first_line in policy.allowed:
        return first_line
    if first_line in policy.aliases:
        return policy.aliases[first_line]
    # Several licence classifiers offer the package under any one of them.
    classifiers = [c for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    known = [policy.aliases[c] for c in classifiers if c in policy.aliases]
    if known and len(known) == len(classifiers):
        return " OR ".join(sorted(set(known)))
    return None


def check(policy: Policy, workdir: Path = BUILD) -> tuple[list[str], list[str]]:
    """(one line per checked package, one line per problem); the lock is exported into
    ``workdir``."""
    locked = sorted({name for name, _ in export_lock(workdir / "requirements.txt", hashes=False)})
    installed = {normalize(d.metadata["Name"]): d for d in md.distributions()}
    lines: list[str] = []
    problems: list[str] = []
    for name in locked:
        dist = installed.get(name)
        if name in policy.programs:
            lines.append(f"{name:40} {policy.programs[name]} (a program run by the checks only)")
            continue
        if name in policy.packages:
            expression: str | None = policy.packages[name]
            source = "licenses.toml"
        elif dist is None:
            problems.append(
                f"{name}: locked but not installed here (another platform or Python?); "
                f"state its licence under [packages.{name}] in {POLICY.name}"
            )
            continue
        else:
            expression = declared(dist.metadata, policy)
            source = "metadata"
        if expression is None:
            problems.append(f"{name}: no licence found in its metadata; state it in {POLICY.name}")
            continue
        try:
            ok = permitted(expression, policy.allowed)
        except ValueError:
            problems.append(f"{name}: unreadable licence expression {expression!r}")
            continue
        lines.append(f"{name:40} {expression} ({source})")
        if not ok:
            problems.append(f"{name}: {expression} is not allowed by {POLICY.name}")
    return lines, problems


def main() -> int:
    lines, problems = check(Policy.load())
    if problems:
        print(f"{CHECK}: {len(problems)} problem(s):", *problems, sep="\n  ")
        return finish(CHECK, FAILED)
    print(f"{CHECK}: {len(lines)} locked packages, every licence allowed")
    return finish(CHECK, OK)


if __name__ == "__main__":
    sys.exit(main())
