# SPDX-License-Identifier: Apache-2.0
"""A Redis outage shows in readiness as what it costs, and goes without a restart.

Two real servers keep their rate limits, cache and breaker state on one Redis the test
starts, stops and starts again on the same port. One fails open (the default): while
Redis is down it stays ready and says ``degraded`` — on ``/ready``, in gRPC health
(the service SERVING, ``dependency/redis:rate_limit`` NOT_SERVING) and in
``genkit_endpoints_redis_up``. The other has ``RATE_LIMIT_FAIL_OPEN=false``: its limiter
answers 503 without Redis, so its readiness is ``failing`` and ``/ready`` answers 503.
Once Redis answers again, the outage probe brings both back to ``ok`` by itself.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.metrics import scrape, series
from tests.support.redis_server import RedisServer
from tests.support.server import ServerProcess, run_server

STATUS_NAME = health_pb2.HealthCheckResponse.ServingStatus.Name
REDIS_UP = "genkit_endpoints_redis_up"
OUTAGES = "genkit_endpoints_redis_outages_total"
FEATURES = ("redis:breaker", "redis:cache", "redis:rate_limit")
RECOVERY = 20.0  # seconds: the probe runs every second; generous for a loaded machine


def ready(server: ServerProcess) -> tuple[int, dict[str, Any]]:
    reply = httpx.get(server.base_url + "/ready", timeout=5)
    return reply.status_code, reply.json()


def wait_ready(server: ServerProcess, status: str, limit: float = RECOVERY) -> dict[str, Any]:
    """Poll ``/ready`` until its body's ``status`` is ``status``; the last body."""
    deadline = time.monotonic() + limit
    while True:
        code, body = ready(server)
        if body["status"] == status:
            assert code == (503 if status == "unavailable" else 200), body
            return body
        assert time.monotonic() < deadline, f"/ready still {body} after {limit} s"
        time.sleep(0.1)


def redis_metrics(server: ServerProcess) -> tuple[float, float]:
    """(redis_up, outages) of the one Redis connection the server holds."""
    families = scrape(server.base_url)
    up, outages = series(families, REDIS_UP), series(families, OUTAGES)
    assert len(up) == len(outages) == 1, (up, outages)
    ((labels, value),) = up.items()
    assert dict(labels) == {"features": "breaker,cache,rate_limit"}
    return value, outages[labels]


def grpc_health(server: ServerProcess, *services: str) -> dict[str, str]:
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return {
            name: STATUS_NAME(
                stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status
            )
            for name in services
        }


def test_a_redis_outage_is_degraded_or_failing_then_ok_without_a_restart(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    namespace = own_redis.namespace()
    shared = {
        "REDIS_URL": own_redis.url,
        "RATE_LIMIT_NAMESPACE": namespace,
        "CACHE_NAMESPACE": namespace,
        "CB_NAMESPACE": namespace,
    }
    (tmp_path / "open").mkdir()
    (tmp_path / "closed").mkdir()
    with contextlib.ExitStack() as stack:
        fail_open = stack.enter_context(run_server(tmp_path / "open", env=shared))
        fail_closed = stack.enter_context(
            run_server(
                tmp_path / "closed",
                args=["--no-grpc"],
                env={**shared, "RATE_LIMIT_FAIL_OPEN": "false"},
            )
        )
        for server in (fail_open, fail_closed):
            body = wait_ready(server, "ok")
            assert {name: body["checks"][name] for name in FEATURES} == dict.fromkeys(
                FEATURES, "ok"
            )
        assert redis_metrics(fail_open) == (1, 0)

        own_redis.stop()
        # One request each notices the outage: counted in the process, or refused.
        assert httpx.post(fail_open.base_url + "/tell-joke", json={}, timeout=10).status_code == 200
        refused = httpx.post(fail_closed.base_url + "/tell-joke", json={}, timeout=10)
        assert refused.status_code == 503, refused.text

        degraded = wait_ready(fail_open, "degraded")["checks"]
        assert {name: degraded[name] for name in FEATURES} == dict.fromkeys(FEATURES, "degraded")
        failing = wait_ready(fail_closed, "unavailable")["checks"]
        assert failing["redis:rate_limit"] == "failing"
        assert failing["redis:cache"] == "degraded"
        assert grpc_health(
            fail_open, "", "genkit.sample.v1.GenkitService", "dependency/redis:rate_limit"
        ) == {
            "": "SERVING",
            "genkit.sample.v1.GenkitService": "SERVING",
            "dependency/redis:rate_limit": "NOT_SERVING",
        }
        assert redis_metrics(fail_open) == (0, 1)

        own_redis.restart_empty()  # the same port; neither service restarts
        for server in (fail_open, fail_closed):
            body = wait_ready(server, "ok")
            assert {name: body["checks"][name] for name in FEATURES} == dict.fromkeys(
                FEATURES, "ok"
            )
        assert grpc_health(fail_open, "", "dependency/redis:rate_limit") == {
            "": "SERVING",
            "dependency/redis:rate_limit": "SERVING",
        }
        assert redis_metrics(fail_open) == (1, 1)
        assert httpx.post(fail_closed.base_url + "/tell-joke", json={}, timeout=10).is_success
        logs = fail_open.log_text() + fail_closed.log_text()
    assert "Traceback" not in logs
