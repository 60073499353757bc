# SPDX-License-Identifier: Apache-2.0
"""Where the kit reaches into third-party internals, one module per dependency.

Some guarantees need more than a library's public API: request-head limits and a head
deadline inside uvicorn's and hypercorn's HTTP/1 protocols, a clean exit code after
uvicorn's drain, granian's multi-process server with our own app loader, Genkit
forgetting a failed plugin start-up and skipping per-call work nothing uses (span content
nobody reads, a runtime generic cast in its middleware dispatch), a finished
OpenTelemetry span copied so it can be masked before export. Each such hook lives in
this package, next to the range of versions it was checked against. A version outside
the range fails at start-up with one line (``UnsupportedDependency``) instead of
misbehaving on the first request; ``tests/unit/test_compat_*.py`` hold one canary per
hook, which is what to run before widening a range.

This is the lowest layer: it imports nothing else of the kit, and nothing here runs at
import time. The check itself needs only package metadata, so ``require_supported`` can
run before the dependency is imported.
"""

from __future__ import annotations

import importlib.metadata
import re

__all__ = [
    "SUPPORTED",
    "UnsupportedDependency",
    "installed_version",
    "require_supported",
    "require_version",
]

# distribution -> (lowest supported, first unsupported, what the kit relies on). Kept in
# step with the bounds in pyproject.toml; the upper bound is the next minor release for
# 0.x libraries, because their internals change without notice.
SUPPORTED: dict[str, tuple[str, str, str]] = {
    "uvicorn": ("0.34", "0.55", "the kit subclasses its HTTP/1 protocol and supervisor"),
    "hypercorn": ("0.18", "0.19", "the kit replaces its HTTP/1 protocol class"),
    "granian": ("2.2", "2.9", "the kit drives its multi-process server directly"),
    "genkit": (
        "0.12",
        "0.13",
        "the kit clears its failed plugin start-ups and trims its per-call tracing and hooks",
    ),
    # A major release may change the storage options the kit passes.
    "limits": ("4.0", "6", "the kit passes its Redis pool to limits' RedisStorage"),
    "opentelemetry-sdk": ("1.30", "2", "the kit copies finished spans to mask them for export"),
}

_RELEASE = re.compile(r"\d+(?:\.\d+)*")


class UnsupportedDependency(ValueError):
    """An installed dependency is outside the range the kit's hooks into it were checked
    against. A ``ValueError``, so a command line that reports bad settings as one line
    reports this one the same way."""

    def __init__(self, dist: str, version: str, lower: str, upper: str, why: str) -> None:
        super().__init__(
            f"{dist} {version} is not supported (needs >={lower},<{upper}): {why}; "
            f"install a version in that range"
        )
        self.dist = dist
        self.version = version


def installed_version(dist: str) -> str:
    """The installed version of distribution ``dist`` (its metadata, not its import)."""
    return importlib.metadata.version(dist)


def _release(version: str) -> tuple[int, ...]:
    # The numeric release only: "0.55.0rc1" counts as 0.55.0, so a pre-release of the
    # first unsupported version is refused too, which is the safe side here.
    found = _RELEASE.match(version)
    if found is None:
        raise ValueError(f"cannot read version {version!r}")
    return tuple(int(part) for part in found.group().split("."))


def _below(version: tuple[int, ...], bound: tuple[int, ...]) -> bool:
    width = max(len(version), len(bound))
    return version + (0,) * (width - len(version)) < bound + (0,) * (width - len(bound))


def require_version(dist: str, lower: str, upper_exclusive: str, why: str) -> str:
    """The installed version of ``dist``; ``UnsupportedDependency`` outside the range."""
    version = installed_version(dist)
    release = _release(version)
    if _below(release, _release(lower)) or not _below(release, _release(upper_exclusive)):
        raise UnsupportedDependency(dist, version, lower, upper_exclusive, why)
    return version


def require_supported(dist: str) -> str:
    """``require_version`` with the range in ``SUPPORTED``."""
    lower, upper, why = SUPPORTED[dist]
    return require_version(dist, lower, upper, why)
