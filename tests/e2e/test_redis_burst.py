# SPDX-License-Identifier: Apache-2.0
"""Bursts on a busy machine are not Redis outages.

Three server processes (uvicorn on uvloop) share one Redis — behind a fault proxy — for
rate limits, the cache and the breaker, while two processes burn the CPU. Round after
round, one client sends a burst over all three: 60 flow calls in three concurrent waves
against a limit of 20 per minute, then 18 identical cacheable requests whose leader is
slow. Under such load a Redis call misses its 250 ms socket timeout now and then; the
proxy makes sure it happens, holding back two Redis answers at the start of every round.
That must cost at most the request it belongs to: no process may decide Redis is down
(``backend_down``), the limiter must keep counting cluster-wide (a process that took
itself off Redis admitted every request of the later waves), and the cache must keep
calling the flow once per cluster.

Each round's client address is its own (``X-Forwarded-For`` from a trusted proxy), so
every round starts with a fresh rate-limit window.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.fault_proxy import FaultProxy
from tests.support.redis_server import RedisServer
from tests.support.server import ServerProcess, run_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROUNDS = 8
LIMIT = 20
WAVES = 3
SLOW_ANSWERS = 2  # per round, held back for SLOW seconds: past the socket timeout
SLOW = 0.5
TWINS = 18  # under the limit: every one is answered
# A request whose Redis call timed out is decided by its process alone (admitted by its
# local count): one extra admission, or one extra flow run, per slow answer at most.
SLACK = SLOW_ANSWERS
BURNERS = 2
BURN_SECONDS = 240  # each burner stops by itself after this, whatever happens to the test


@contextlib.contextmanager
def busy_cpu() -> Iterator[None]:
    code = (
        "import time\n"
        f"end = time.monotonic() + {BURN_SECONDS}\n"
        "while time.monotonic() < end:\n"
        "    sum(range(10_000))\n"
    )
    burners = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(BURNERS)]
    try:
        yield
    finally:
        for proc in burners:
            proc.kill()
            proc.wait(timeout=10)


async def limited_burst(servers: list[ServerProcess], client_ip: str) -> list[int]:
    statuses: list[int] = []
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(WAVES):
            calls = [
                client.post(
                    servers[i % len(servers)].base_url + "/tell-joke",
                    json={"name": f"n{i}"},
                    headers={"x-forwarded-for": client_ip},
                )
                for i in range(LIMIT)
            ]
            statuses += [r.status_code for r in await asyncio.gather(*calls)]
    return statuses


async def identical_burst(servers: list[ServerProcess], text: str, client_ip: str) -> list[int]:
    async with httpx.AsyncClient(timeout=60) as client:
        calls = [
            client.post(
                servers[i % len(servers)].base_url + "/translate",
                json={"text": text},
                headers={"x-forwarded-for": client_ip},
            )
            for i in range(TWINS)
        ]
        return [r.status_code for r in await asyncio.gather(*calls)]


def events(servers: list[ServerProcess], name: str) -> list[dict[str, object]]:
    return [e for s in servers for e in s.log_events() if e.get("event") == name]


def test_bursts_on_a_busy_machine_never_take_a_process_off_redis(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    assert redis_server.port is not None
    proxy = FaultProxy(redis_server.port)
    namespace = redis_server.namespace()
    env = {
        "REDIS_URL": proxy.url(),
        "RATE_LIMIT_DEFAULT": f"{LIMIT}/minute",
        "RATE_LIMIT_NAMESPACE": namespace,
        "CACHE_NAMESPACE": namespace,
        "CB_NAMESPACE": namespace,
        "TRUSTED_PROXIES": "127.0.0.1/32",
        "OFFLINE_FIRST_CHUNK_DELAY": "200",  # the cache's leader is slow: others wait
        "LOG_LEVEL": "debug",  # cache_fill lines count the flow runs
    }
    args = ["--framework", "fastapi", "--server", "uvicorn", "--no-grpc"]
    admitted: list[int] = []
    with contextlib.ExitStack() as stack:
        stack.callback(proxy.close)
        servers = [stack.enter_context(run_server(tmp_path, args=args, env=env)) for _ in range(3)]
        # Steady traffic first, as in the scenario this guards: the pools hold connections
        # and the limiter's scripts are loaded. A cold pool opening a burst's worth of
        # connections on a saturated machine has its connects time out as well, each one
        # that request's bounded fallback; that is not what these rounds measure.
        asyncio.run(limited_burst(servers, "10.255.0.1"))
        with busy_cpu():
            for n in range(ROUNDS):
                proxy.delay_responses(SLOW, SLOW_ANSWERS)
                statuses = asyncio.run(limited_burst(servers, f"10.0.{n}.1"))
                assert set(statuses) <= {200, 429}, sorted(statuses)
                admitted.append(statuses.count(200))
                text = f"burst {uuid.uuid4().hex}"
                replies = asyncio.run(identical_burst(servers, text, f"10.1.{n}.1"))
                assert set(replies) == {200}, replies
        down = events(servers, "backend_down")
        fills = len(events(servers, "cache_fill"))
        log = "\n".join(s.log_text() for s in servers)
    assert not down, down  # one slow answer is not an outage
    assert all(LIMIT <= a <= LIMIT + SLACK for a in admitted), admitted
    # One flow run per round for the whole cluster; a request whose lease claim timed
    # out runs its own (at most one per process, since each process still shares).
    assert ROUNDS <= fills <= ROUNDS + SLACK, fills
    assert "Traceback" not in log
