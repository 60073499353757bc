# SPDX-License-Identifier: Apache-2.0
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
range in ``genkit_endpoints.compat.SUPPORTED``. A version outside it fails when a
``RateLimiter`` is built, with one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genkit_endpoints.compat import require_supported as _require

if TYPE_CHECKING:
    from limits.aio.storage import Storage
    from redis.asyncio import ConnectionPool

__all__ = ["redis_storage", "require_limits"]


def require_limits() -> str:
    """The installed ``limits`` version; ``UnsupportedDependency`` outside the range."""
    return _require("limits")


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
