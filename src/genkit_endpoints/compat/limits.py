"""The kit's hold on the ``limits`` library, and the versions it was checked against.

The rate limiter runs ``limits``' async strategies over its storages. On Redis it hands
``RedisStorage`` the kit's own connection pool through the documented
``connection_pool`` option, so the limiter shares the one pool (and the outage gate) of
the other features instead of ``limits`` opening its own from the URI. The client
``limits`` builds around that pool owns no socket (redis-py leaves a pool it was given
to its owner), so the limiter never has to reach into ``limits`` to close anything: no
private attribute of ``limits`` is used.

What the kit still relies on beyond the signatures — that the pool passed really
carries every command, that ``wrap_exceptions`` wraps redis-py's errors, that
``implementation="redispy"`` picks redis-py — is checked by
``tests/unit/test_compat_limits.py`` against a real Redis; run it before widening the
range below. A version outside it fails when a ``RateLimiter`` is built, with one line.
"""

from __future__ import annotations

import importlib.metadata
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from limits.aio.storage import Storage
    from redis.asyncio import ConnectionPool

__all__ = [
    "LOWER",
    "UPPER",
    "UnsupportedDependency",
    "installed_version",
    "redis_storage",
    "require_supported",
]

DIST = "limits"
# Kept in step with the bounds in pyproject.toml: the next major release may change the
# storage options the kit passes.
LOWER, UPPER = "4.0", "6"
_WHY = "the kit passes its Redis pool to limits' RedisStorage"
_RELEASE = re.compile(r"\d+(?:\.\d+)*")


class UnsupportedDependency(ValueError):
    """An installed dependency is outside the range the kit was checked against. A
    ``ValueError``, so a command line that reports bad settings as one line reports this
    one the same way."""

    def __init__(self, dist: str, version: str, lower: str, upper: str, why: str) -> None:
        super().__init__(
            f"{dist} {version} is not supported (needs >={lower},<{upper}): {why}; "
            f"install a version in that range"
        )
        self.dist = dist
        self.version = version


def installed_version() -> str:
    """The installed version of ``limits`` (its metadata, not its import)."""
    return importlib.metadata.version(DIST)


def _release(version: str) -> tuple[int, ...]:
    # The numeric release only: "6.0rc1" reads as 6.0, so a pre-release of the first
    # unsupported version is refused too, the safe side here.
    found = _RELEASE.match(version)
    if found is None:
        raise ValueError(f"cannot read version {version!r}")
    return tuple(int(part) for part in found.group().split("."))


def _below(version: tuple[int, ...], bound: tuple[int, ...]) -> bool:
    width = max(len(version), len(bound))
    return version + (0,) * (width - len(version)) < bound + (0,) * (width - len(bound))


def require_supported() -> str:
    """The installed ``limits`` version; ``UnsupportedDependency`` outside the range."""
    version = installed_version()
    release = _release(version)
    if _below(release, _release(LOWER)) or not _below(release, _release(UPPER)):
        raise UnsupportedDependency(DIST, version, LOWER, UPPER, _WHY)
    return version


def redis_storage(uri: str, pool: ConnectionPool, *, key_prefix: str) -> Storage:
    """``limits``' async Redis storage sending its commands over ``pool``.

    ``uri`` only tells ``limits`` which storage to build (``async+redis://…``); the
    connection comes from ``pool``. Storage errors arrive wrapped as
    ``limits.errors.StorageError``, with redis-py's error as the cause.
    """
    from limits.aio.storage import RedisStorage  # noqa: PLC0415 - only with a Redis URL

    return RedisStorage(
        uri,
        wrap_exceptions=True,
        implementation="redispy",
        key_prefix=key_prefix,
        connection_pool=pool,  # type: ignore[arg-type]  # typed as scalars, documented as a pool
    )
