# SPDX-License-Identifier: Apache-2.0
"""The flow cache across real server processes sharing one Redis.

Three app processes (the offline model, 300 ms to its first chunk) get the same
translation request concurrently; the cluster calls the model once. Runs are counted by
the cache's ``cache_fill`` debug line, written once per flow run that fills the cache.
"""

from __future__ import annotations

import contextlib
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.support.redis_server import RedisServer
from tests.support.server import ServerProcess, run_server


def _fills(servers: list[ServerProcess]) -> int:
    return sum(1 for s in servers for e in s.log_events() if e.get("event") == "cache_fill")


def test_identical_concurrent_requests_call_the_model_once_per_cluster(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    env = {
        "CACHE_REDIS_URL": redis_server.url,
        "LOG_LEVEL": "debug",
        "OFFLINE_FIRST_CHUNK_DELAY": "300",
    }
    # A text no other test sends: the app's key namespace is fixed, the Redis is shared.
    body = {"text": f"cluster {uuid.uuid4().hex}", "target_language": "French"}
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(run_server(tmp_path, args=["--no-grpc"], env=env)) for i in range(3)
        ]

        def post(i: int) -> httpx.Response:
            with servers[i % 3].client() as client:
                return client.post("/translate", json=body)

        with ThreadPoolExecutor(max_workers=24) as pool:
            replies = list(pool.map(post, range(24)))
        assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
        assert len({r.content for r in replies}) == 1
        assert _fills(servers) == 1
        # Cache-Control: no-cache skips the read: one more run, the same answer shape.
        with servers[0].client() as client:
            fresh = client.post("/translate", json=body, headers={"cache-control": "no-cache"})
        assert fresh.status_code == 200
        assert _fills(servers) == 2
