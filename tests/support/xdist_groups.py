# SPDX-License-Identifier: Apache-2.0
"""How the suite is spread over xdist workers: each shared server is started once.

A session- or module-scoped server is started by every worker that runs a test needing
it. Plain ``--dist load`` hands out single tests, so both workers would start most of
them. Here the tests that share one server form one work unit, handed to one worker:

* an e2e contract test of one framework-server stack (its id starts ``[fastapi-uvicorn``),
* an adversarial test of one server (the server is a part of its id),
* a ``test_servers`` test of one server, a ``test_providers`` test of one wire format
  and framework (their module-scoped servers);
* every test of a module in ``SHARED_SERVER_MODULES`` (one server for the module);

every other test is a unit of its own, as under ``--dist load``. The units are read from
node ids because that is all the scheduler sees (the workers collect, it does not).
"""

from __future__ import annotations

import re

from xdist.scheduler import LoadScopeScheduling

_FRAMEWORKS = "fastapi|litestar|quart"
_SERVERS = "uvicorn|granian|hypercorn"
_STACK = re.compile(rf"\[({_FRAMEWORKS})-({_SERVERS})[\]-]")
_SERVER = re.compile(rf"[\[-]({_SERVERS})[\]-]")
_PROVIDER = re.compile(rf"\[(gemini|openai)-({_FRAMEWORKS})[\]-]")
# Modules whose tests (but those of one stack) all use one module-scoped server, or one
# expensive tool run (checkov).
SHARED_SERVER_MODULES = frozenset(
    {
        "tests/e2e/test_reporting.py",
        "tests/e2e/test_loadtest.py",
        "tests/e2e/test_grpc_web.py",
        "tests/deploy/test_checkov.py",
    }
)


def work_unit(nodeid: str) -> str:
    """The unit of work ``nodeid`` belongs to: tests of one unit run on one worker."""
    path = nodeid.split("::", 1)[0]
    if path.startswith("tests/e2e/") and (stack := _STACK.search(nodeid)):
        return f"stack-{stack[1]}-{stack[2]}"
    if path.startswith("tests/adversarial/") and (server := _SERVER.search(nodeid)):
        return f"adversarial-{server[1]}"
    if path == "tests/e2e/test_servers.py" and (server := _SERVER.search(nodeid)):
        return f"{path}-{server[1]}"
    if path == "tests/e2e/test_providers.py" and (provider := _PROVIDER.search(nodeid)):
        return f"{path}-{provider[1]}-{provider[2]}"
    if path in SHARED_SERVER_MODULES:
        return path
    return nodeid


class SharedServerScheduling(LoadScopeScheduling):  # type: ignore[misc]
    """``--dist load``, except that the tests sharing a server are one unit of work."""

    def _split_scope(self, nodeid: str) -> str:
        return work_unit(nodeid)
