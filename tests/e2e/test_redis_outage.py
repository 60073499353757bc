# SPDX-License-Identifier: Apache-2.0
"""A Redis outage degrades the service instead of taking it down.

The real app keeps its rate limits, cache and breaker state on a Redis behind a TCP
fault proxy. Refused, blackholed (accepts, never answers) and restarted-empty Redis must
cause zero 5xx; while blackholed, requests may not slow down by more than 250 ms at the
99th percentile (the outage gate keeps them off the dead Redis); after recovery the app
is back on Redis within 30 s without a restart.
"""

from __future__ import annotations

import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import redis

from tests.support.fault_proxy import FaultProxy, Mode, fault_proxy
from tests.support.redis_server import RedisServer, start_redis
from tests.support.server import ServerProcess, run_server

REQUESTS = 300  # per phase: enough that a few discovery requests stay above the p99
ADDED_P99_LIMIT = 0.25


def _burst(client: httpx.Client, n: int) -> tuple[list[int], list[float]]:
    statuses, latencies = [], []
    for _ in range(n):
        began = time.perf_counter()
        r = client.post("/translate", json={"text": f"hello {uuid.uuid4().hex}"})
        latencies.append(time.perf_counter() - began)
        statuses.append(r.status_code)
    return statuses, latencies


def _p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[98]


def _rate_limit_keys(redis_server: RedisServer, namespace: str) -> int:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=1)
    try:
        return sum(1 for _ in client.scan_iter(f"{namespace}:*", count=1000))
    finally:
        client.close()


def test_redis_refused_blackholed_and_restarted_cause_no_5xx(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    (tmp_path / "app").mkdir()
    own = start_redis(tmp_path / "redis")  # restarted below: not the shared one
    namespace = f"outage{uuid.uuid4().hex[:8]}"
    assert own.port is not None
    try:
        with fault_proxy(own.port) as proxy:
            _run_phases(tmp_path / "app", own, proxy, namespace)
    finally:
        own.stop()


def _run_phases(workdir: Path, own: RedisServer, proxy: FaultProxy, namespace: str) -> None:
    env = {
        "REDIS_URL": proxy.url(),
        "RATE_LIMIT_NAMESPACE": namespace,
        "CB_NAMESPACE": namespace,
    }
    with run_server(workdir, args=["--no-grpc"], env=env) as app, app.client() as client:
        statuses, baseline = _burst(client, REQUESTS)
        assert set(statuses) == {200}
        assert _rate_limit_keys(own, namespace) > 0, "the limiter was not on Redis"

        proxy.set_mode("blackhole")
        statuses, blackholed = _burst(client, REQUESTS)
        assert all(s < 500 for s in statuses), sorted(set(statuses))
        added = _p99(blackholed) - _p99(baseline)
        assert added <= ADDED_P99_LIMIT, f"p99 grew by {added * 1000:.0f} ms"

        proxy.set_mode("refuse")
        statuses, _ = _burst(client, 50)
        assert all(s < 500 for s in statuses), sorted(set(statuses))

        proxy.set_mode("pass")
        own.restart_empty()
        assert _rate_limit_keys(own, namespace) == 0
        deadline = time.monotonic() + 30
        while _rate_limit_keys(own, namespace) == 0:
            assert time.monotonic() < deadline, "not back on Redis 30 s after recovery"
            statuses, _ = _burst(client, 5)
            assert all(s < 500 for s in statuses), sorted(set(statuses))
            time.sleep(0.2)
        statuses, _ = _burst(client, 20)
        assert set(statuses) == {200}
    log = app.log_text()
    assert "Traceback" not in log
    for event in (
        "rate_limit_storage_unavailable",
        "cache_bypassed",
        "breaker_backend_unavailable",
    ):
        assert event in log, f"the outage was not logged: {event}"


def test_faults_on_pooled_connections_under_uvloop_cause_no_5xx(tmp_path: Path) -> None:
    """The pool already holds connections when Redis starts refusing and resets them, or
    goes silent. uvicorn runs on uvloop (its default here), which raises ``RuntimeError``
    for a write on a connection the server reset: that too is an outage, never a 500."""
    (tmp_path / "redis").mkdir()
    own = start_redis(tmp_path / "redis")
    namespace = f"pooled{uuid.uuid4().hex[:8]}"
    assert own.port is not None
    env = {
        "RATE_LIMIT_NAMESPACE": namespace,
        "CACHE_NAMESPACE": namespace,
        "CB_NAMESPACE": namespace,
    }
    try:
        with fault_proxy(own.port) as proxy:
            env["REDIS_URL"] = proxy.url()
            with run_server(tmp_path, args=["--no-grpc"], env=env) as app:
                assert "uvloop" in _event_loop_of(app)
                for fault in ("reset", "refuse", "blackhole"):
                    _pooled_fault(app, proxy, fault)
                log = app.log_text()
    finally:
        own.stop()
    assert "Traceback" not in log
    assert log.count('"backend_down"') >= 3  # each fault was confirmed by the probe


def _event_loop_of(app: ServerProcess) -> str:
    """Which event loop the server runs: uvloop's library is mapped into it, or not."""
    maps = Path(f"/proc/{app.proc.pid}/maps").read_text()
    return "uvloop" if "uvloop" in maps else "asyncio"


def _pooled_fault(app: ServerProcess, proxy: FaultProxy, fault: Mode) -> None:
    body = {"text": f"pooled {uuid.uuid4().hex}"}
    with ThreadPoolExecutor(max_workers=16) as pool, app.client() as client:
        warm = list(pool.map(lambda _: client.post("/translate", json=body).status_code, range(32)))
        assert set(warm) == {200}, warm  # and the pools hold open connections now
        proxy.set_mode(fault)
        time.sleep(0.3)  # the server's loop notices the dropped connections
        statuses = [
            client.post("/translate", json={"text": f"{fault} {i}"}).status_code for i in range(20)
        ]
        assert all(s < 500 for s in statuses), (fault, statuses)
        proxy.set_mode("pass")
        deadline = time.monotonic() + 30
        while app.log_text().count('"backend_recovered"') < app.log_text().count('"backend_down"'):
            assert time.monotonic() < deadline, f"not back on Redis after {fault}"
            time.sleep(0.2)
