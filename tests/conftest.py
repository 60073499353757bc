"""Fixtures every test directory may use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis_server import RedisServer, redis_fixture


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One Redis per test process (xdist worker); tests isolate by ``namespace()``."""
    yield from redis_fixture(tmp_path_factory.mktemp("redis"))


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


# Module-scoped parametrised fixtures that start a server per parameter.
_MODULE_SERVER_PARAMS = ("live", "provider_app")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One xdist worker per started configuration (the suite runs ``--dist loadgroup``).

    A shared server is started by each worker that runs a test needing it. The tests of
    one stack (the e2e contract modules share a server per stack for the session), of
    one server in the adversarial corpus (its pool is per session), and of one parameter
    of a module-scoped server fixture are grouped, so each such server starts once
    rather than once per worker.
    """
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        module = item.nodeid.split("::", 1)[0]
        if "stack" in params:
            framework, server = params["stack"]
            item.add_marker(pytest.mark.xdist_group(f"stack-{framework}-{server}"))
        elif module.startswith("tests/adversarial/"):
            server = params.get("server_name") or params.get("server_kind")
            if server is not None:
                item.add_marker(pytest.mark.xdist_group(f"adversarial-{server}"))
        else:
            for name in _MODULE_SERVER_PARAMS:
                if name in params:
                    value = params[name]
                    label = "-".join(value) if isinstance(value, tuple) else str(value)
                    item.add_marker(pytest.mark.xdist_group(f"{module}-{label}"))
