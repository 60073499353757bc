# SPDX-License-Identifier: Apache-2.0
"""A Redis outage as readiness and metrics report it, per feature.

The rate limiter and the cache share one Redis behind a TCP fault proxy, with the
service's one ``Readiness`` and a real ``PrometheusMetrics``. While the proxy refuses,
each feature's ``redis:<feature>`` component says what the outage costs: the cache
falls back (``degraded``), the rate limiter too when it fails open, but a limiter that
fails closed answers 503 (``failing``, so the service is not ready). The probe brings
every component back to ``ok`` once Redis answers, with no restart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from genkit_endpoints.core.errors import EndpointError
from genkit_endpoints.core.health import Readiness
from genkit_endpoints.policies.backends import parse_backend
from genkit_endpoints.policies.cache import CacheConfig, FlowCache
from genkit_endpoints.policies.ratelimit import RateLimitConfig, RateLimiter
from genkit_endpoints.policies.redis import RedisConnections
from genkit_endpoints.telemetry.metrics import PrometheusMetrics
from tests.support.fault_proxy import fault_proxy
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.timeout(60)

FEATURES = "cache,rate_limit"  # the label of the one connection both features share


async def wait_until(check: Callable[[], bool], what: str, limit: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"not {what} within {limit} s"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize(("fail_open", "limiter_down"), [(True, "degraded"), (False, "failing")])
async def test_an_outage_degrades_or_fails_each_feature_then_recovers(
    redis_server: RedisServer, fail_open: bool, limiter_down: str
) -> None:
    assert redis_server.port is not None
    namespace = redis_server.namespace()
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    readiness = Readiness()
    readiness.set_status("model", "ok")
    connections = RedisConnections(observer=metrics, readiness=readiness)

    def redis_up() -> float | None:
        return registry.get_sample_value("genkit_endpoints_redis_up", {"features": FEATURES})

    def outages() -> float | None:
        return registry.get_sample_value(
            "genkit_endpoints_redis_outages_total", {"features": FEATURES}
        )

    with fault_proxy(redis_server.port) as proxy:
        backend = parse_backend(proxy.url())
        limiter = RateLimiter(
            RateLimitConfig(
                rates="100000/minute", backend=backend, fail_open=fail_open, namespace=namespace
            ),
            connections=connections,
            observer=metrics,
        )
        cache = FlowCache(
            CacheConfig(backend=backend, namespace=namespace),
            connections=connections,
            observer=metrics,
        )
        try:
            metrics.declare(redis_features=connections.features())
            assert connections.features() == [FEATURES]
            await limiter.hit("client")
            assert readiness.components() == {
                "model": "ok",
                "redis:rate_limit": "ok",
                "redis:cache": "ok",
            }
            assert (redis_up(), outages()) == (1, 0)

            proxy.set_mode("refuse")
            # Fail open: counted in the process; fail closed: 503. Either way the call
            # makes the gate check Redis.
            with contextlib.suppress(EndpointError):
                await limiter.hit("client")
            assert limiter.gate is not None
            gate = limiter.gate
            await wait_until(lambda: not gate.up, "down")
            assert readiness.status("redis:rate_limit") == limiter_down
            assert readiness.status("redis:cache") == "degraded"
            assert readiness.ready is fail_open
            assert (redis_up(), outages()) == (0, 1)

            proxy.set_mode("pass")
            await wait_until(lambda: gate.up, "back on Redis")
            assert readiness.status("redis:rate_limit") == "ok"
            assert readiness.status("redis:cache") == "ok"
            assert readiness.ready
            assert (redis_up(), outages()) == (1, 1)
        finally:
            await limiter.aclose()
            await cache.aclose()
