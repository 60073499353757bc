# SPDX-License-Identifier: Apache-2.0
"""Rate limits across real server processes.

With one Redis, three replicas share one window per client: 2N concurrent requests
spread over them admit exactly N cluster-wide. With ``memory://`` a single process is
exact on its own (and each replica would count alone — the documented limit).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
import pytest

from tests.support.redis_server import RedisServer
from tests.support.server import ServerProcess, run_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

N = 10
ARGS = ["--framework", "fastapi", "--server", "uvicorn", "--no-grpc"]


async def burst(servers: list[ServerProcess], count: int) -> list[httpx.Response]:
    """``count`` concurrent flow calls, round-robin over ``servers``, all from 127.0.0.1."""
    async with httpx.AsyncClient(timeout=30) as client:
        calls = [
            client.post(
                servers[i % len(servers)].base_url + "/flows/tell_joke",
                json={"data": {"name": f"n{i}"}},
            )
            for i in range(count)
        ]
        return list(await asyncio.gather(*calls))


def check_exactly_n_admitted(replies: list[httpx.Response]) -> None:
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [200] * N + [429] * N, statuses
    for r in replies:
        assert r.headers["ratelimit-limit"] == str(N)
        if r.status_code == 429:
            assert r.headers["ratelimit-remaining"] == "0"
            assert 1 <= int(r.headers["retry-after"]) <= 60
            assert r.headers["content-type"] == "application/problem+json"


def test_replicas_sharing_redis_admit_exactly_the_limit_cluster_wide(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    env = {
        "REDIS_URL": redis_server.url,
        "RATE_LIMIT_DEFAULT": f"{N}/minute",
        "RATE_LIMIT_NAMESPACE": redis_server.namespace(),
    }
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(run_server(tmp_path, args=ARGS, env=env)) for _ in range(3)]
        replies = asyncio.run(burst(servers, 2 * N))
        check_exactly_n_admitted(replies)
        served = {r.url.port for r in replies if r.status_code == 200}
        assert len(served) > 1  # the admissions really were spread over the replicas


def test_one_process_with_memory_storage_admits_exactly_the_limit(tmp_path: Path) -> None:
    env = {"RATE_LIMIT_DEFAULT": f"{N}/minute"}  # app_env scrubs REDIS_URL: memory://
    with run_server(tmp_path, args=ARGS, env=env) as server:
        replies = asyncio.run(burst([server], 2 * N))
        check_exactly_n_admitted(replies)
        with server.client() as c:
            assert c.get("/health").status_code == 200  # probes stay exempt
