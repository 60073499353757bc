"""Fixtures starting the real app (``python -m endpoints_hello``) as a process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess, run_server


@pytest.fixture(scope="module")
def offline_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The app with zero configuration (offline model, no latency), shared by a module."""
    tmp: Path = tmp_path_factory.mktemp("offline")
    with run_server(tmp) as server:
        yield server
