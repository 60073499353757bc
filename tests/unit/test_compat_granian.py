# SPDX-License-Identifier: Apache-2.0
"""Canaries for the granian internals in ``genkit_endpoints.compat.granian``.

The runner names granian's multi-process server class (not exported), hands it our app
loader through ``serve(target_loader=...)``, and replaces granian's logging dict, which
names a private logger. These tests fail when a granian release changes one of those;
that a real granian serves through them is ``tests/e2e/test_servers.py``. Run both
before widening the granian range.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator

import granian
import granian.log
import pytest
from granian.log import LogLevels
from granian.server.common import AbstractServer

from genkit_endpoints import compat
from genkit_endpoints.compat import UnsupportedDependency
from genkit_endpoints.compat.granian import ROUTE_TO_ROOT, MPServer, require_granian
from genkit_endpoints.serving.config import ServerConfig
from genkit_endpoints.serving.runners.granian import granian_server, run_granian


def test_the_runner_s_settings_reach_the_multi_process_server() -> None:
    cfg = ServerConfig(host="127.0.0.1", port=1234, workers=3, shutdown_grace=7.5)
    server = granian_server("pkg.mod:factory", cfg)
    assert isinstance(server, MPServer)
    assert isinstance(server, AbstractServer)
    assert (server.target, server.bind_addr, server.bind_port) == (
        "pkg.mod:factory",
        "127.0.0.1",
        1234,
    )
    assert (server.workers, server.factory, server.workers_kill_timeout) == (3, True, 8)
    assert server.respawn_failed_workers is False


def test_serve_still_takes_a_target_loader_called_with_the_target() -> None:
    """The runner passes ``load_factory`` and relies on granian calling it with the
    "module:function" target (``wrap_loader`` on by default)."""
    params = inspect.signature(MPServer.serve).parameters
    assert "target_loader" in params
    assert params["wrap_loader"].default is True


@pytest.mark.skipif(not granian.server.BUILD_GIL, reason="free-threaded build: Granian is MTServer")
def test_on_a_regular_build_the_documented_entry_point_is_the_same_class() -> None:
    assert granian.Granian is MPServer


@pytest.fixture
def granian_loggers() -> Iterator[list[logging.Logger]]:
    loggers = [granian.log.logger, granian.log.access_logger]
    saved = [(log.handlers[:], log.propagate, log.level) for log in loggers]
    yield loggers
    for log, (handlers, propagate, level) in zip(loggers, saved, strict=True):
        log.handlers[:] = handlers
        log.propagate = propagate
        log.level = level


def test_granian_logs_through_the_loggers_the_replacement_dict_names(
    granian_loggers: list[logging.Logger],
) -> None:
    assert [log.name for log in granian_loggers] == list(ROUTE_TO_ROOT["loggers"])
    granian.log.configure_logging(LogLevels.info, ROUTE_TO_ROOT)
    for log in granian_loggers:
        assert (log.handlers, log.propagate) == ([], True)


@pytest.mark.parametrize("version", ["2.1.9", "2.9.0", "3.0.0"])
def test_an_out_of_range_granian_is_one_clear_line_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    """The runner checks first, in the supervisor, before any worker is spawned."""
    monkeypatch.setattr(compat, "installed_version", lambda dist: version)
    with pytest.raises(UnsupportedDependency) as err:
        run_granian("pkg.mod:factory", ServerConfig(host="127.0.0.1", port=1))
    message = str(err.value)
    assert message.startswith(f"granian {version} is not supported (needs >=2.2,<2.9): ")
    assert "\n" not in message


def test_the_locked_granian_is_in_range() -> None:
    assert require_granian().startswith("2.8.")
