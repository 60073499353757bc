# SPDX-License-Identifier: Apache-2.0
"""Fixtures every test directory may use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.redis_server import RedisServer, redis_fixture, start_redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One Redis per test process (xdist worker); tests isolate by ``namespace()``."""
    yield from redis_fixture(tmp_path_factory.mktemp("redis"))


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def own_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    """A Redis of this test alone (never the shared one, nor ``REDIS_URL``'s): it may stop
    and restart it, or count its clients."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    server = start_redis(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``--dist load`` (the default), tests sharing a started server go to one
    worker, so the server starts once (``tests/support/xdist_groups.py``)."""
    if config.getvalue("dist") != "load":
        return None
    from tests.support.xdist_groups import SharedServerScheduling

    return SharedServerScheduling(config, log)
