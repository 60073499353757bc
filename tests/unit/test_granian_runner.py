# SPDX-License-Identifier: Apache-2.0
"""What granian cannot bound is said at start-up, where it matters.

granian cuts a slow request head only after KEEP_ALIVE_TIMEOUT. Bound to an address that
other hosts can reach, the runner warns once; on loopback (a sidecar proxy, every test
server) it stays quiet. Nothing here binds a socket: the decision and the warning are
functions of the configuration.
"""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from genkit_endpoints.serving.config import ServerConfig
from genkit_endpoints.serving.runners.granian import slow_head_exposed, warn_slow_heads


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "fd00::1", "api.example.com"])
def test_a_reachable_address_is_exposed_to_slow_heads(host: str) -> None:
    assert slow_head_exposed(ServerConfig(host=host))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_is_not(host: str) -> None:
    assert not slow_head_exposed(ServerConfig(host=host))


def test_nothing_to_warn_about_when_keep_alive_is_no_longer_than_the_head_deadline() -> None:
    cfg = ServerConfig(host="0.0.0.0", keep_alive=10, header_read_timeout=10)
    assert not slow_head_exposed(cfg)


def test_the_warning_names_the_seconds_and_the_remedy() -> None:
    cfg = ServerConfig(host="0.0.0.0", keep_alive=74.5, header_read_timeout=10)
    with capture_logs() as logs:
        warn_slow_heads(cfg)
        warn_slow_heads(ServerConfig(host="127.0.0.1", keep_alive=75))
    assert len(logs) == 1
    (event,) = logs
    assert (event["event"], event["log_level"]) == ("granian_slow_head_bound", "warning")
    assert (event["slow_head_seconds"], event["header_read_timeout"]) == (75, 10)
    assert "proxy or load balancer that buffers request heads" in event["advice"]
