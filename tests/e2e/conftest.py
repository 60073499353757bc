# SPDX-License-Identifier: Apache-2.0
"""Fixtures starting the real app (``python -m endpoints_hello``) as a process.

Which stacks a module runs on — the rule, decided per module from what it tests:

* **The contract modules run on all nine framework-server stacks**: ``test_routes``,
  ``test_errors``, ``test_sse``, ``test_security_headers`` and ``test_shutdown``. What
  they check — routes and their bodies, problem+json errors, SSE framing, buffering and
  disconnects, the headers on every kind of response, draining on a signal — passes
  through both the framework's wiring and the server's HTTP and lifecycle handling, so
  every combination has to keep the same contract. They take the ``stack`` fixture.
* **A module about the servers runs per server on one framework** (FastAPI):
  ``test_servers`` (keep-alive, workers), ``test_grpc_process`` (gRPC beside each
  server's lifecycle) and the adversarial corpus (header limits, framing, slow clients:
  each server's own parser and timers; ``tests/adversarial/conftest.py``).
* **A module about the frameworks runs per framework on one server**: the provider
  suite pairs each wire format with a framework (``test_providers``), so upstream
  failures reach the client through every framework's streaming.
* **Everything else runs on the representative stack**, ``REPRESENTATIVE``: the CLI's
  defaults (FastAPI on uvicorn). Those modules test the kit's policies, providers, Redis
  clusters and configuration, which sit below the framework and above the server and
  behave the same on every stack.

Servers are expensive to start, so the zero-configuration app is shared by the whole
session per stack (``offline_server``), and every test of one stack is sent to the same
xdist worker (``tests/support/xdist_groups.py``), so no stack starts on both workers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.image_server import ALLOWED_NETWORK, FakeImageServer, Reply
from tests.support.server import ServerProcess, run_server

# The fake image server's address (127.0.0.2) is the one private address the app may fetch
# from; the default image URL is on the public internet, which tests never reach.
IMAGE_ENV = {"IMAGE_FETCH_ALLOWED_NETWORKS": ALLOWED_NETWORK}

# (framework, server): all nine combinations.
STACKS = [
    (framework, server)
    for framework in ("fastapi", "litestar", "quart")
    for server in ("uvicorn", "granian", "hypercorn")
]


# The stack every module that is not about frameworks or servers runs on.
REPRESENTATIVE = ("fastapi", "uvicorn")


def stack_id(stack: tuple[str, str]) -> str:
    return f"{stack[0]}-{stack[1]}"


@pytest.fixture(scope="session", params=STACKS, ids=[stack_id(s) for s in STACKS])
def stack(request: pytest.FixtureRequest) -> tuple[str, str]:
    framework, server = request.param
    return str(framework), str(server)


def stack_args(stack: tuple[str, str]) -> list[str]:
    return ["--framework", stack[0], "--server", stack[1], "--no-grpc"]


class StackServers:
    """The zero-configuration app per stack, started on first use and kept until the
    session ends.

    Not a parametrized session fixture holding the process itself: pytest finalizes such
    a fixture whenever a worker moves on to another parameter, and a test of the first
    stack running later could then be handed the stopped server. The registry is not
    parametrized, so nothing is stopped before the end.
    """

    def __init__(self, factory: pytest.TempPathFactory, exits: contextlib.ExitStack) -> None:
        self._factory = factory
        self._exits = exits
        self._open: dict[tuple[str, str], ServerProcess] = {}

    def get(self, stack: tuple[str, str]) -> ServerProcess:
        server = self._open.get(stack)
        if server is None:
            tmp: Path = self._factory.mktemp("offline")
            server = self._exits.enter_context(
                run_server(tmp, args=stack_args(stack), env=IMAGE_ENV)
            )
            self._open[stack] = server
        assert server.proc.poll() is None, f"the {stack} server exited:\n{server.log_text()}"
        return server


@pytest.fixture(scope="session")
def stack_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackServers]:
    with contextlib.ExitStack() as exits:
        yield StackServers(tmp_path_factory, exits)


@pytest.fixture
def offline_server(stack: tuple[str, str], stack_servers: StackServers) -> ServerProcess:
    """The app with zero configuration (offline model, no latency), shared per stack by
    every contract module: tests must leave it as they found it."""
    return stack_servers.get(stack)


@pytest.fixture(scope="session")
def image_server() -> Iterator[FakeImageServer]:
    """An image server on 127.0.0.2 for describe-image: ``/cat.png`` is a PNG."""
    with FakeImageServer(routes={"/cat.png": Reply()}).running() as server:
        yield server
