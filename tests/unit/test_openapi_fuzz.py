# SPDX-License-Identifier: Apache-2.0
"""A bounded schemathesis run against the OpenAPI document: no 5xx, and every response is
what the document says — status code, media type, body schema (each SSE event too) and
documented headers.

In-process: schemathesis drives the served ASGI app — FastAPI inside the kit's whole
middleware stack, built by ``build_service`` in DEBUG (the only mode that serves the
document) — with no sockets. The model is the offline one; describe-image fetches through
``offline_fetcher``, whose DNS and transport are fakes, so the image URLs schemathesis
invents never reach a network. A guard makes any socket connect or name lookup fail the
test, so a fetcher that went around its fakes would be caught, not merely lucky.

Each operation gets a derandomized Hypothesis run per generation mode (positive: inputs
the document allows; negative: inputs it forbids) through ``APIOperation.as_strategy``.
(``schemathesis.pytest.from_fixture`` would be the idiomatic loader, but schemathesis
4.32 reads ``Function._nodeid``, which pytest 9 no longer has.) Documented answers the
generator may miss (400, 401, 404, 413, 415, 503) are also sent on purpose, and a
falsified document must make the same checks fail: the run can catch a lie.
"""

from __future__ import annotations

import copy
import gc
import socket
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from genkit import Genkit
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err, Ok
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from endpoints_hello.app import PROMPTS_DIR
from endpoints_hello.flows import build_routes
from genkit_endpoints.http.middleware.policy import HttpPolicy
from genkit_endpoints.model.client import ModelClient
from genkit_endpoints.model.config import ModelCallPolicyConfig, ProviderConfig
from genkit_endpoints.model.providers import choose_model
from genkit_endpoints.security.keys import ApiKeyring
from genkit_endpoints.serving.service import Service, ServiceConfig, build_service
from tests.support.image_server import offline_fetcher

CONFORMANCE = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
CHECKS = [not_a_server_error, *CONFORMANCE]
MAX_EXAMPLES = 15  # per operation and mode
PROBLEM = "application/problem+json"
KEY = "fuzz-key-0123456789abcdef"
# Small, so that long generated strings (translate takes 10 000 characters) cross it now
# and then: the 413 is part of what the fuzzer sees, not only of the examples.
MAX_BODY = 4096


def build(*, keyed: bool) -> Service:
    choice = choose_model(ProviderConfig())  # no provider keys: the offline model
    ai = Genkit(plugins=list(choice.plugins), model=choice.model, prompt_dir=PROMPTS_DIR)
    table = build_routes(ai, ModelClient(ai, ModelCallPolicyConfig()), offline_fetcher())
    cfg = ServiceConfig(
        debug=True,
        http=HttpPolicy(debug=True, max_body_size=MAX_BODY),
        api_keys=ApiKeyring.parse(f"fuzzer:{KEY}") if keyed else None,
    )
    return build_service(ai, choice, table, cfg)


@dataclass
class NetworkGuard:
    """Refuses every outbound connection and name lookup, and remembers each attempt."""

    attempts: list[str] = field(default_factory=list)

    def refuse(self, what: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            self.attempts.append(f"{what}{args}")
            raise OSError(f"network access in an offline test: {what}")

        return refused


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[NetworkGuard]:
    guard = NetworkGuard()
    monkeypatch.setattr(socket.socket, "connect", guard.refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", guard.refuse("connect"))
    monkeypatch.setattr(socket, "getaddrinfo", guard.refuse("getaddrinfo"))
    yield guard
    assert guard.attempts == [], "the run tried to reach the network"


@dataclass
class Served:
    service: Service
    keyed: bool

    def headers(self, mode: GenerationMode) -> dict[str, str]:
        """With keys, inputs the document allows come with the key (and must pass the
        auth layer unharmed); the others come without one (and must get the 401)."""
        return {"X-API-Key": KEY} if self.keyed and mode is GenerationMode.POSITIVE else {}


@pytest.fixture(params=[False, True], ids=["open", "api-keys"])
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    threshold = gc.get_threshold()
    yield Served(build(keyed=bool(request.param)), keyed=bool(request.param))
    # schemathesis keeps each app's lifespan running until exit; end it with the test.
    schemathesis_asgi.shutdown_lifespans()
    gc.unfreeze()  # the service's start-up froze the heap of this test process
    gc.set_threshold(*threshold)  # … and raised the young-generation threshold


def load_schema(served: Served) -> OpenApiSchema:
    # With keys, the document itself needs one (only the probes are exempt).
    return schemathesis.openapi.from_asgi(
        "/openapi.json", served.service.asgi, headers={"X-API-Key": KEY}
    )


@dataclass
class Run:
    """What a run saw: (status, media type) counts, and every failure found."""

    seen: Counter[tuple[int, str]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


Operation = APIOperation[Any, Any, Any, Any]


def fuzz(operation: Operation, mode: GenerationMode, served: Served, run: Run) -> None:
    @given(operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,  # the same cases on every run
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def one(case: Case[Operation]) -> None:
        response = case.call_and_validate(headers=served.headers(mode), checks=CHECKS)
        media_type = response.headers.get("content-type", [""])[0].split(";")[0]
        run.seen[(response.status_code, media_type)] += 1

    try:
        one()
    except (AssertionError, FailureGroup) as exc:
        run.failures.append(f"{operation.label} ({mode.value}): {exc}")


def test_every_response_is_documented_and_none_is_a_server_error(served: Served) -> None:
    schema = load_schema(served)
    schema.validate()  # a valid OpenAPI 3.1 document
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), [r.err() for r in results if isinstance(r, Err)]
    table = served.service.table
    assert {op.path for op in operations} == {
        "/health", "/ready", "/flows/{flow_name}", *(route.path for route in table)
    }  # fmt: skip
    run = Run()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(operation, mode, served, run)
    assert not run.failures, "\n\n".join(run.failures)
    # The run reached the flows and streamed; with keys, keyless requests were refused.
    assert (200, "application/json") in run.seen
    assert (200, "text/event-stream") in run.seen
    assert ((401, PROBLEM) in run.seen) is served.keyed


@dataclass(frozen=True)
class Example:
    path: str
    status: int
    method: str = "POST"
    kwargs: dict[str, Any] = field(default_factory=dict)  # for `APIOperation.Case`
    keyless: bool = False


# The documented answers a generator may or may not hit, each sent on purpose.
EXAMPLES = {
    "a flow's output": Example("/generate-character", 200, kwargs={"body": {}}),
    "a stream": Example("/tell-joke/stream", 200, kwargs={"body": {"name": "Ada"}}),
    "a callable stream": Example("/flows/{flow_name}", 200, kwargs={
        "path_parameters": {"flow_name": "tell_story"}, "query": {"stream": "true"}}),
    "malformed Host": Example("/health", 400, "GET", {"headers": {"host": "bad host"}}),
    "unknown flow": Example("/flows/{flow_name}", 404, kwargs={
        "path_parameters": {"flow_name": "no_such_flow"}, "body": {}}),
    "body over the limit": Example("/translate", 413, kwargs={"body": {"text": "x" * MAX_BODY}}),
    "not JSON": Example("/translate", 415, kwargs={"body": "hi", "media_type": "text/plain"}),
    "invalid input": Example("/tell-joke", 422, kwargs={"body": {"name": 5}}),
    "refused image URL": Example("/describe-image", 422, kwargs={
        "body": {"image_url": "http://[::1"}}),
    "no key": Example("/chat", 401, kwargs={"body": {}}, keyless=True),
}  # fmt: skip


def test_each_documented_answer_matches_the_document(served: Served) -> None:
    schema = load_schema(served)
    failures: list[str] = []

    def check(name: str, example: Example) -> None:
        if example.keyless and not served.keyed:
            return
        mode = GenerationMode.NEGATIVE if example.keyless else GenerationMode.POSITIVE
        case = schema[example.path][example.method].Case(**example.kwargs)
        checks = CHECKS if example.status < 500 else CONFORMANCE  # a 503 on purpose
        try:
            response = case.call_and_validate(headers=served.headers(mode), checks=checks)
        except (AssertionError, FailureGroup) as exc:
            failures.append(f"{name}: {exc}")
            return
        if response.status_code != example.status:
            failures.append(f"{name}: {response.status_code}, not {example.status}")

    for name, example in EXAMPLES.items():
        check(name, example)
    served.service.readiness.start_draining()
    check("not ready", Example("/ready", 503, "GET"))
    assert not failures, "\n\n".join(failures)


def _at(doc: dict[str, Any], *keys: str | int) -> Any:
    node: Any = doc
    for key in keys:
        node = node[key]
    return node


def _require(node: dict[str, Any], extra: str) -> None:
    node["required"] = [*node.get("required", []), extra]


def _rename(content: dict[str, Any], old: str, new: str) -> None:
    content[new] = content.pop(old)


OK_CONTENT = ("post", "responses", "200", "content")
SSE_CHUNK_FRAME = (*OK_CONTENT, "text/event-stream", "schema", "oneOf", 0, "properties", "data",
                   "contentSchema", "oneOf", 0)  # fmt: skip


@dataclass(frozen=True)
class Lie:
    path: str
    tell: Callable[[dict[str, Any]], object]  # falsifies a copy of the document in place
    expect: str  # what schemathesis reports
    body: Any = field(default_factory=dict)
    media_type: str = "application/json"


LIES = {
    "422 undocumented": Lie("/tell-joke", lambda d: _at(d, "paths", "/tell-joke", "post",
                            "responses").pop("422"), "Undocumented status code", {"name": 5}),
    "200 media type": Lie("/chat", lambda d: _rename(_at(d, "paths", "/chat", *OK_CONTENT),
                          "application/json", "application/xml"), "Undocumented Content-Type"),
    "output schema": Lie("/generate-character", lambda d: _require(_at(d, "components",
                         "schemas", "RpgCharacter"), "secret"), '"secret" is a required'),
    "each SSE event": Lie("/tell-story/stream", lambda d: _require(_at(d, "paths",
                          "/tell-story/stream", *SSE_CHUNK_FRAME), "page"),
                          "SSE event violates schema"),
    "problem schema": Lie("/translate", lambda d: _require(_at(d, "components", "schemas",
                          "Problem"), "trace"), '"trace" is a required', "plain words",
                          "text/plain"),
    "request id header": Lie("/ready", lambda d: _at(d, "components", "headers", "RequestId",
                             "schema").update(pattern="^never$"), "header does not conform"),
}  # fmt: skip


@pytest.mark.parametrize("served", [False], ids=["open"], indirect=True)
@pytest.mark.parametrize("name", list(LIES))
def test_the_run_fails_when_the_document_does_not_match_a_response(
    served: Served, name: str
) -> None:
    """The checks are live: the same response, judged against a falsified document, fails."""
    lie = LIES[name]
    schema = load_schema(served)
    method = "GET" if lie.path == "/ready" else "POST"
    body = {} if method == "GET" else {"body": lie.body, "media_type": lie.media_type}
    case = schema[lie.path][method].Case(**body)
    response = case.call()
    case.validate_response(response, checks=CHECKS)  # the true document holds

    falsified = copy.deepcopy(schema.raw_schema)
    lie.tell(falsified)
    lying = schemathesis.openapi.from_dict(falsified)[lie.path][method].Case(**body)
    with pytest.raises((AssertionError, FailureGroup), match=lie.expect):
        lying.validate_response(response, checks=CHECKS)
