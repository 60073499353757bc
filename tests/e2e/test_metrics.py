# SPDX-License-Identifier: Apache-2.0
"""``/metrics`` in the real app process: exact counts after a known mix of traffic.

One server (uvicorn, the sample app) in front of the fake OpenAI provider, with API keys,
a rate limit, the flow cache and the breaker on. The traffic below is chosen so every
series the operator's golden signals rely on has a known value afterwards: requests by
route template, method and status (200, 422, 404, 429, 502, 503), a cache miss and two
hits, a stream, gRPC calls with two status codes, an opened breaker, model calls with
their tokens and time to first chunk. Retries are off so one request is one model call.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from endpoints_hello.generated import genkit_sample_pb2 as pb
from endpoints_hello.generated import genkit_sample_pb2_grpc as pb_grpc
from tests.fakes.provider import FakeProvider, Fault, Reply
from tests.support.server import ServerProcess, run_server

pytestmark = pytest.mark.e2e

MAIN_KEY = "main-key-0123456789abcdef0123456789"
BURST_KEY = "burst-key-0123456789abcdef012345678"
METRICS_KEY = "metrics-key-0123456789abcdef"
LIMIT = 30  # per minute and principal
MODEL = "openai/gpt-4o-mini"
TRANSLATION = {
    "original_text": "hello",
    "translated_text": "bonjour",
    "target_language": "French",
    "confidence": "high",
}
SERVICE = "genkit.sample.v1.GenkitService"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: ServerProcess, accept: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {METRICS_KEY}"}
    if accept:
        headers["accept"] = accept
    return httpx.get(server.base_url + "/metrics", headers=headers, timeout=10)


def samples(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: Samples, name: str, **labels: str) -> float:
    """The sample ``name`` whose labels include ``labels`` (exactly one must match)."""
    wanted = set(labels.items())
    matches = [v for (n, lbl), v in found.items() if n == name and wanted <= lbl]
    assert len(matches) == 1, (name, labels, matches)
    return matches[0]


def total(found: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, lbl), v in found.items() if n == name and wanted <= lbl)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(default=Reply(text=json.dumps(TRANSLATION))) as provider:
        yield provider


@pytest.fixture(scope="module")
def server(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": fake.openai_base_url,
        "MODEL": MODEL,
        "LLM_MAX_RETRIES": "0",
        "API_KEYS": f"main:{MAIN_KEY},burst:{BURST_KEY}",
        "RATE_LIMIT_DEFAULT": f"{LIMIT}/minute",
        "CACHE_ENABLED": "true",
        "CB_FAILURE_THRESHOLD": "2",
        "CB_RECOVERY_TIMEOUT": "600",
        "METRICS_KEY": METRICS_KEY,
    }
    with run_server(tmp_path_factory.mktemp("metrics"), env=env, probe="/ready") as proc:
        yield proc


@pytest.fixture(scope="module")
def after_traffic(server: ServerProcess, fake: FakeProvider) -> Samples:
    main = {"x-api-key": MAIN_KEY}
    with httpx.Client(base_url=server.base_url, timeout=20) as c:
        for _ in range(3):  # a miss, then two hits
            assert c.post("/translate", json={"text": "hello"}, headers=main).status_code == 200
        assert c.post("/translate", json={"text": 5}, headers=main).status_code == 422
        for _ in range(3):  # random paths: one "<unmatched>" series, not three
            assert c.get(f"/no/such/{uuid.uuid4().hex}", headers=main).status_code == 404
        with c.stream("POST", "/tell-joke/stream", json={"name": "Ada"}, headers=main) as r:
            assert r.status_code == 200
            r.read()
        for _ in range(LIMIT + 1):  # the burst principal's last request is refused
            status = c.post("/translate", json={"text": 5}, headers={"x-api-key": BURST_KEY})
        assert status.status_code == 429
        fake.script(Fault.status(503), Fault.status(503))
        assert [
            c.post("/tell-joke", json={"name": f"b{i}"}, headers=main).status_code for i in range(3)
        ] == [502, 502, 503]  # the third is refused by the open breaker
    fake.default = Reply(text="a joke")
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.GenkitServiceStub(channel)
        metadata = (("x-api-key", MAIN_KEY),)
        # The breaker is open for every flow: the gRPC call is refused too (UNAVAILABLE).
        with pytest.raises(grpc.RpcError) as refused:
            stub.TellJoke(pb.JokeRequest(name="x"), metadata=metadata, timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.RpcError) as invalid:
            stub.TellJoke(pb.JokeRequest(name="x" * 201), metadata=metadata, timeout=10)
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    response = scrape(server)
    assert response.status_code == 200
    return samples(response.text)


def test_requests_are_counted_by_route_template_method_and_status(after_traffic: Samples) -> None:
    name = "http_server_request_duration_seconds_count"
    counts = {
        ("POST", "/translate", "200"): 3,
        ("POST", "/translate", "422"): 1 + LIMIT,
        ("POST", "/translate", "429"): 1,
        ("GET", "<unmatched>", "404"): 3,
        ("POST", "/tell-joke/stream", "200"): 1,
        ("POST", "/tell-joke", "502"): 2,
        ("POST", "/tell-joke", "503"): 1,
    }
    for (method, route, status), expected in counts.items():
        labels = {
            "http_request_method": method,
            "http_route": route,
            "http_response_status_code": status,
        }
        assert value(after_traffic, name, **labels) == expected, labels
    # Random segments never become label values: every 404 is one series.
    not_found = [lbl for (n, lbl), _ in after_traffic.items() if n == name and
                 ("http_response_status_code", "404") in lbl]  # fmt: skip
    assert len(not_found) == 1
    routes = {dict(lbl).get("http_route") for (n, lbl) in after_traffic if n == name}
    assert all(r is not None and not r.startswith("/no/such") for r in routes)
    # The scrape that produced these numbers was in flight while it was rendered.
    assert value(after_traffic, "http_server_active_requests") == 1


def test_policies_report_rate_limits_cache_results_and_the_breaker(after_traffic: Samples) -> None:
    decisions = "genkit_endpoints_rate_limit_decisions_total"
    assert value(after_traffic, decisions, transport="http", decision="limited") == 1
    # main: 3 + 1 + 3 + 1 + 3 requests; burst: LIMIT admitted.
    assert value(after_traffic, decisions, transport="http", decision="allowed") == 11 + LIMIT
    assert value(after_traffic, decisions, transport="grpc", decision="allowed") == 2

    cache = "genkit_endpoints_cache_requests_total"
    assert value(after_traffic, cache, flow="translate_text", result="miss") == 1
    assert value(after_traffic, cache, flow="translate_text", result="hit") == 2
    assert value(after_traffic, cache, flow="translate_text", result="coalesced") == 0

    assert value(after_traffic, "genkit_endpoints_breaker_state") == 2  # open
    transitions = "genkit_endpoints_breaker_transitions_total"
    assert value(after_traffic, transitions, from_state="closed", to_state="open") == 1
    assert value(after_traffic, "genkit_endpoints_streams_open") == 0
    assert value(after_traffic, "genkit_endpoints_draining") == 0


def test_grpc_calls_are_counted_by_method_and_code(after_traffic: Samples) -> None:
    name = "rpc_server_duration_seconds_count"
    common = {"rpc_system": "grpc", "rpc_service": SERVICE, "rpc_method": "TellJoke"}
    assert value(after_traffic, name, **common, rpc_grpc_status_code="14") == 1  # UNAVAILABLE
    assert value(after_traffic, name, **common, rpc_grpc_status_code="3") == 1  # INVALID_ARGUMENT


def test_model_calls_report_duration_first_chunk_and_tokens(
    after_traffic: Samples, fake: FakeProvider
) -> None:
    duration = "gen_ai_client_operation_duration_seconds_count"
    # translate (one miss) and the stream succeeded; the two 503s failed.
    assert value(after_traffic, duration, gen_ai_request_model=MODEL, error_type="") == 2
    failed = total(after_traffic, duration, gen_ai_request_model=MODEL) - 2
    assert failed == 2
    ttfc = "gen_ai_client_operation_time_to_first_chunk_seconds_count"
    assert value(after_traffic, ttfc, gen_ai_request_model=MODEL) == 1
    tokens = "gen_ai_client_token_usage"
    out = {"gen_ai_request_model": MODEL, "gen_ai_token_type": "output"}
    assert value(after_traffic, tokens + "_count", **out) == 2
    # The fake reports one output token per word of its reply.
    words = len(json.dumps(TRANSLATION).split())
    assert value(after_traffic, tokens + "_sum", **out) == 2 * words
    inp = {"gen_ai_request_model": MODEL, "gen_ai_token_type": "input"}
    assert value(after_traffic, tokens + "_count", **inp) == 2


def test_openmetrics_is_served_on_request(server: ServerProcess) -> None:
    response = scrape(server, accept="application/openmetrics-text; version=1.0.0")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")
    plain = scrape(server)
    assert plain.headers["content-type"].startswith("text/plain")


def test_metrics_need_their_own_key_and_no_api_key_opens_them(server: ServerProcess) -> None:
    url = server.base_url + "/metrics"
    missing = httpx.get(url)
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert httpx.get(url, headers={"authorization": f"Bearer {MAIN_KEY}"}).status_code == 401
    assert httpx.get(url, headers={"x-api-key": MAIN_KEY}).status_code == 401
    assert httpx.post(url, headers={"authorization": f"Bearer {METRICS_KEY}"}).status_code == 405
    # Not rate limited: far more scrapes than the limit allows any principal.
    for _ in range(LIMIT + 5):
        assert scrape(server).status_code == 200


_PROMQL_WORDS = frozenset({"and", "or", "unless", "offset", "bool"})
_SUFFIXES = ("", "_bucket", "_count", "_sum", "_total", "_created")
REPO = Path(__file__).resolve().parents[2]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or match.group() in _PROMQL_WORDS:
            continue  # a function call or an operator
        names.add(match.group())
    return names


def dashboard_expressions() -> list[str]:
    doc = json.loads((REPO / "docs" / "grafana" / "genkit-endpoints.json").read_text())
    return [t["expr"] for p in doc["panels"] for t in p.get("targets", ())]


def docs_expressions() -> list[str]:
    page = (REPO / "docs" / "operating.md").read_text()
    blocks = re.findall(r"```promql\n(.*?)```", page, re.S)
    lines = [ln for block in blocks for ln in block.splitlines()]
    return [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def test_the_dashboard_and_the_docs_query_only_metrics_the_service_emits(
    server: ServerProcess,
) -> None:
    exposed = {
        family.name + suffix
        for family in text_string_to_metric_families(scrape(server).text)
        for suffix in _SUFFIXES
    }
    expressions = dashboard_expressions() + docs_expressions()
    assert len(expressions) > 15
    used = set().union(*(metric_names(e) for e in expressions))
    assert used, "no metric names found"
    assert used <= exposed, sorted(used - exposed)
    # Every family the service emits is on the dashboard.
    families = {
        f.name
        for f in text_string_to_metric_families(scrape(server).text)
        if not f.name.endswith("_created")  # creation times, not worth a panel
    }
    shown = {n.removesuffix(s) for n in used for s in _SUFFIXES if s and n.endswith(s)} | used
    assert families <= shown, sorted(families - shown)
