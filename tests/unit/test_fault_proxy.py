# SPDX-License-Identifier: Apache-2.0
"""The fault proxy itself: each mode does what the outage tests rely on."""

from __future__ import annotations

import time

import pytest
import redis

from tests.support.fault_proxy import fault_proxy
from tests.support.redis_server import RedisServer


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)


def test_proxy_forwards_blackholes_refuses_and_recovers(redis_server: RedisServer) -> None:
    assert redis_server.port is not None
    with fault_proxy(redis_server.port) as proxy:
        client = _client(proxy.url())
        assert client.ping()
        proxy.set_mode("blackhole")
        began = time.monotonic()
        with pytest.raises(redis.exceptions.TimeoutError):
            client.ping()
        assert time.monotonic() - began < 1  # only the client's own timeout ended it
        proxy.set_mode("refuse")
        with pytest.raises(redis.exceptions.ConnectionError):
            _client(proxy.url()).ping()
        proxy.set_mode("pass")
        assert _client(proxy.url()).ping()
