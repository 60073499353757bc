# SPDX-License-Identifier: Apache-2.0
"""Prometheus metrics: the observer's series, the scrape endpoint and the model-call events.

The end-to-end counts after real traffic are in ``tests/e2e/test_metrics.py``; these
check the pieces on their own: bounded labels, exposition formats, the endpoint's
credential, the request record middleware and the model client's per-request events on
the offline model.
"""

from __future__ import annotations

from typing import Any

import pytest
from genkit import Genkit
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from genkit_endpoints.core.context import RequestRecord, record_var
from genkit_endpoints.http.middleware.metrics import MetricsEndpointMiddleware
from genkit_endpoints.http.middleware.record import RecordMiddleware, route_templates
from genkit_endpoints.model.client import ModelClient
from genkit_endpoints.model.config import ModelCallPolicyConfig
from genkit_endpoints.model.offline import OFFLINE_MODEL, OfflineModel
from genkit_endpoints.telemetry.metrics import PrometheusMetrics
from tests.unit.asgi._support import json_app
from tests.unit.asgi_helpers import call, http_scope


def series(metrics: PrometheusMetrics, name: str) -> dict[frozenset[tuple[str, str]], float]:
    body, _ = metrics.render()
    found: dict[frozenset[tuple[str, str]], float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            if s.name == name:
                found[frozenset(s.labels.items())] = s.value
    return found


def test_each_instance_has_its_own_registry() -> None:
    a, b = PrometheusMetrics(), PrometheusMetrics()
    a.rate_limit("http", "limited")
    assert series(a, "genkit_endpoints_rate_limit_decisions_total")
    assert not series(b, "genkit_endpoints_rate_limit_decisions_total")
    registry = CollectorRegistry()
    assert PrometheusMetrics(registry).registry is registry


def test_unknown_methods_and_grpc_codes_share_one_label_value() -> None:
    metrics = PrometheusMetrics()
    for method in ("GET", "BREW", "PROPFIND", "X" * 50):
        metrics.http_started()
        metrics.http_finished(method, "/r", 200, 0.01)
    counts = series(metrics, "http_server_request_duration_seconds_count")
    assert {dict(k)["http_request_method"]: v for k, v in counts.items()} == {"GET": 1, "_OTHER": 3}
    metrics.rpc_started()
    metrics.rpc_finished("svc", "M", "RESOURCE_EXHAUSTED", 0.1)
    metrics.rpc_started()
    metrics.rpc_finished("svc", "M", "NOT_A_CODE", 0.1)
    codes = series(metrics, "rpc_server_duration_seconds_count")
    assert sorted(dict(k)["rpc_grpc_status_code"] for k in codes) == ["2", "8"]  # UNKNOWN, 8
    assert series(metrics, "genkit_endpoints_rpc_active_calls") == {frozenset(): 0}


def test_declared_series_exist_before_the_first_event() -> None:
    metrics = PrometheusMetrics()
    metrics.declare(flows=["f"], breakers=["model"], redis_features=["cache,rate_limit"])
    cache = series(metrics, "genkit_endpoints_cache_requests_total")
    assert {dict(k)["result"] for k in cache} == {"hit", "miss", "coalesced", "bypass"}
    assert set(cache.values()) == {0}
    assert series(metrics, "genkit_endpoints_breaker_state") == {
        frozenset({("breaker", "model")}): 0
    }
    up = series(metrics, "genkit_endpoints_redis_up")
    assert up == {frozenset({("features", "cache,rate_limit")}): 1}
    metrics.backend_state("cache,rate_limit", False)
    assert set(series(metrics, "genkit_endpoints_redis_up").values()) == {0}
    assert set(series(metrics, "genkit_endpoints_redis_outages_total").values()) == {1}


def test_breaker_transitions_move_the_state_gauge() -> None:
    metrics = PrometheusMetrics()
    metrics.breaker_transition("model", "closed", "open")
    metrics.breaker_transition("model", "open", "half_open")
    assert series(metrics, "genkit_endpoints_breaker_state") == {
        frozenset({("breaker", "model")}): 1
    }
    transitions = series(metrics, "genkit_endpoints_breaker_transitions_total")
    assert sum(transitions.values()) == 2


async def _scrape(app: Any, headers: list[tuple[bytes, bytes]], method: str = "GET") -> Any:
    return await call(app, http_scope(path="/metrics", method=method, headers=headers))


async def test_the_endpoint_serves_both_formats_and_checks_its_key() -> None:
    metrics = PrometheusMetrics()
    app = MetricsEndpointMiddleware(json_app(), metrics, key="k" * 20)
    bearer = (b"authorization", b"Bearer " + b"k" * 20)
    ok = await _scrape(app, [bearer])
    assert ok.status == 200
    assert ok.headers[b"content-type"].startswith(b"text/plain")
    assert b"http_server_active_requests" in ok.body
    om = await _scrape(app, [bearer, (b"accept", b"application/openmetrics-text")])
    assert om.headers[b"content-type"].startswith(b"application/openmetrics-text")
    assert om.body.rstrip().endswith(b"# EOF")
    for headers in ([], [(b"authorization", b"Bearer " + b"k" * 19)], [(b"x-api-key", b"k" * 20)]):
        refused = await _scrape(app, headers)
        assert refused.status == 401
        assert b"http_server" not in refused.body
    head = await _scrape(app, [bearer], method="HEAD")
    assert (head.status, head.body) == (200, b"")
    assert (await _scrape(app, [bearer], method="DELETE")).status == 405
    other = await call(app, http_scope(path="/metricsx"))
    assert other.status == 200  # not the endpoint: the app answered


async def test_the_record_middleware_counts_by_template_and_exposes_the_record() -> None:
    metrics = PrometheusMetrics()
    seen: list[RequestRecord | None] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(record_var.get())
        await json_app()(scope, receive, send)

    stack = RecordMiddleware(app, route_templates(["/known"]), observer=metrics)
    await call(stack, http_scope(path="/known"))
    await call(stack, http_scope(path="/unknown/123"))
    await call(stack, http_scope(path="/unknown/456"))
    counts = series(metrics, "http_server_request_duration_seconds_count")
    routes = {dict(k)["http_route"]: v for k, v in counts.items()}
    assert routes == {"/known": 1, "<unmatched>": 2}
    assert all(isinstance(r, RequestRecord) for r in seen)
    assert record_var.get() is None  # reset once the request is done
    assert series(metrics, "http_server_active_requests") == {frozenset(): 0}


@pytest.fixture
def offline_client() -> tuple[ModelClient, PrometheusMetrics]:
    metrics = PrometheusMetrics()
    ai = Genkit(plugins=[OfflineModel()], model=OFFLINE_MODEL)
    return ModelClient(ai, ModelCallPolicyConfig(), observer=metrics, model=OFFLINE_MODEL), metrics


async def test_model_calls_report_duration_and_the_models_own_token_counts(
    offline_client: tuple[ModelClient, PrometheusMetrics],
) -> None:
    llm, metrics = offline_client
    record = RequestRecord()
    token = record_var.set(record)
    try:
        response = await llm.generate(prompt="Tell me a joke about cats.")
    finally:
        record_var.reset(token)
    assert response.usage is not None
    durations = series(metrics, "gen_ai_client_operation_duration_seconds_count")
    assert durations == {
        frozenset(
            {("gen_ai_operation_name", "chat"), ("gen_ai_request_model", OFFLINE_MODEL),
             ("error_type", "")}
        ): 1
    }  # fmt: skip
    sums = {
        dict(k)["gen_ai_token_type"]: v
        for k, v in series(metrics, "gen_ai_client_token_usage_sum").items()
    }
    assert sums == {"input": response.usage.input_tokens, "output": response.usage.output_tokens}
    assert (record.model, record.input_tokens, record.output_tokens) == (
        OFFLINE_MODEL,
        response.usage.input_tokens,
        response.usage.output_tokens,
    )
    assert not series(metrics, "gen_ai_client_operation_time_to_first_chunk_seconds_count")


async def test_a_stream_reports_its_first_chunk_once(
    offline_client: tuple[ModelClient, PrometheusMetrics],
) -> None:
    llm, metrics = offline_client
    chunks: list[str] = []
    await llm.stream(chunks.append, prompt="Write a short story about the sea.")
    assert len(chunks) > 1
    ttfc = series(metrics, "gen_ai_client_operation_time_to_first_chunk_seconds_count")
    assert list(ttfc.values()) == [1]
