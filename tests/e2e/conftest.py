"""Fixtures starting the real app (``python -m endpoints_hello``) as a process.

``stack`` parametrises a module over framework and server combinations, so the REST
suites run against each of them (SPEC §2.1: the same contract everywhere).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess, run_server

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
    with run_server(tmp, args=stack_args(stack)) as server:
        yield server
