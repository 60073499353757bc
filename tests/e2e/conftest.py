"""Fixtures starting the real app (``python -m endpoints_hello``) as a process.

``stack`` parametrises a module over framework and server combinations, so the REST
suites run against each of them: the same contract everywhere.
"""

from __future__ import annotations

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


@pytest.fixture(scope="module", params=STACKS, ids=[f"{fw}-{srv}" for fw, srv in STACKS])
def stack(request: pytest.FixtureRequest) -> tuple[str, str]:
    framework, server = request.param
    return str(framework), str(server)


def stack_args(stack: tuple[str, str]) -> list[str]:
    return ["--framework", stack[0], "--server", stack[1], "--no-grpc"]


@pytest.fixture(scope="module")
def offline_server(
    stack: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The app with zero configuration (offline model, no latency), shared by a module."""
    tmp: Path = tmp_path_factory.mktemp("offline")
    with run_server(tmp, args=stack_args(stack), env=IMAGE_ENV) as server:
        yield server


@pytest.fixture(scope="session")
def image_server() -> Iterator[FakeImageServer]:
    """An image server on 127.0.0.2 for describe-image: ``/cat.png`` is a PNG."""
    with FakeImageServer(routes={"/cat.png": Reply()}).running() as server:
        yield server
