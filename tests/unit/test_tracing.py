# SPDX-License-Identifier: Apache-2.0
"""Tracing in-process: the scrubber, the propagators, the server-span layer, log ids, and
a service built with tracing switched off.

Spans come from tracer providers of each test's own (never the global one, which a
process can set only once); the end-to-end tests in ``tests/e2e/test_tracing.py`` run
the real thing against a fake collector.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator

import pytest
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.instrumentation.propagators import set_global_response_propagator
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from endpoints_hello.app import APP
from endpoints_hello.generated import genkit_sample_pb2 as pb
from genkit_endpoints.http.middleware.policy import HttpPolicy
from genkit_endpoints.http.middleware.record import route_templates
from genkit_endpoints.http.middleware.stack import build_stack
from genkit_endpoints.http.middleware.tracing import TracingMiddleware
from genkit_endpoints.security.masking import SecretMasker
from genkit_endpoints.serving.app import create_service
from genkit_endpoints.serving.cli import parse_settings
from genkit_endpoints.serving.logging import access_logger, configure_logging
from genkit_endpoints.telemetry.config import TracingConfig
from genkit_endpoints.telemetry.otel import (
    OutboundOnlyPropagator,
    SpanScrubber,
    TraceResponseHeader,
)
from genkit_endpoints.telemetry.tracing import Tracing, current_span_ids
from tests.support.otlp_collector import FakeCollector
from tests.unit.asgi._support import json_app
from tests.unit.asgi_helpers import call, http_scope
from tests.unit.grpc_harness import serving

API_KEY = "web-key-0123456789abcdef"
PROMPT = f"Translate 'lighthouse'. My key is {API_KEY}, my token sk-proj-{'A' * 24}."
CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACING_ONLY_MODULES = {
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "opentelemetry.instrumentation.httpx",
    "opentelemetry.instrumentation.redis",
    "opentelemetry.instrumentation.grpc",
}


@pytest.fixture
def provider() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield tracer_provider, exporter
    tracer_provider.shutdown()


def genkit_like_span(
    tracer_provider: TracerProvider, exporter: InMemorySpanExporter
) -> ReadableSpan:
    """A span shaped like Genkit's model spans: what was said, the context, an error."""
    tracer = tracer_provider.get_tracer("genkit-tracer")
    with tracer.start_as_current_span("openai/gpt-4o-mini") as span:
        span.set_attributes({
            "genkit:name": "openai/gpt-4o-mini",
            "genkit:input": json.dumps({"messages": [{"content": [{"text": PROMPT}]}]}),
            "genkit:output": '{"message": {"content": [{"text": "phare"}]}}',
            "genkit:metadata:context": json.dumps({"headers": {"x-api-key": API_KEY}}),
            "genkit:error": f"provider refused key {API_KEY}",
            "http.request.header.authorization": ("Bearer abcdefghijkl",),
            "tags": ("plain", f"with {API_KEY}"),
            "count": 3,
        })  # fmt: skip
        span.add_event("exception", {"exception.message": f"bad key {API_KEY}"})
        span.set_status(Status(StatusCode.ERROR, f"failed with {API_KEY}"))
    (finished,) = exporter.get_finished_spans()
    exporter.clear()
    return finished


def test_without_capture_what_was_said_is_dropped_and_the_rest_masked(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    sink = InMemorySpanExporter()
    scrubber = SpanScrubber(sink, SecretMasker([API_KEY]), capture_content=False)
    scrubber.export([genkit_like_span(*provider)])
    (span,) = sink.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert set(attributes) == {"genkit:name", "genkit:error", "http.request.header.authorization",
                               "tags", "count"}  # fmt: skip
    assert attributes["genkit:error"] == "provider refused key ***"
    assert attributes["http.request.header.authorization"] == "***"  # by its name
    assert attributes["tags"] == ("plain", "with ***")
    assert attributes["count"] == 3
    assert span.events[0].attributes == {"exception.message": "bad key ***"}
    assert span.status.description == "failed with ***"
    assert API_KEY not in repr(span.to_json())


def test_with_capture_what_was_said_is_kept_masked_and_the_context_still_dropped(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    sink = InMemorySpanExporter()
    SpanScrubber(sink, SecretMasker([API_KEY]), capture_content=True).export(
        [genkit_like_span(*provider)]
    )
    (span,) = sink.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert "genkit:metadata:context" not in attributes
    said = str(attributes["genkit:input"])
    assert "Translate 'lighthouse'" in said
    assert API_KEY not in said
    assert "sk-proj-AAAA" not in said
    assert attributes["genkit:output"] == '{"message": {"content": [{"text": "phare"}]}}'


def test_a_span_with_nothing_to_drop_or_mask_leaves_uncopied(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """Copying every span on the exporter's thread would cost every traced request."""
    tracer_provider, exporter = provider
    tracer = tracer_provider.get_tracer("server")
    with tracer.start_as_current_span("POST /tell-joke", attributes={"http.route": "/tell-joke"}):
        pass
    with tracer.start_as_current_span("POST /translate") as span:
        span.set_status(Status(StatusCode.ERROR, f"upstream said {API_KEY}"))
    clean, secret = exporter.get_finished_spans()
    scrubber = SpanScrubber(InMemorySpanExporter(), SecretMasker([API_KEY]), capture_content=False)
    assert scrubber.scrub(clean) is clean
    masked = scrubber.scrub(secret)
    assert masked is not secret
    assert masked.status.description == "upstream said ***"
    assert masked.context == secret.context


def test_untrusted_context_is_not_extracted_but_still_injected(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    propagator = OutboundOnlyPropagator(TraceContextTextMapPropagator())
    extracted = propagator.extract({"traceparent": CALLER})
    assert not trace.get_current_span(extracted).get_span_context().is_valid
    with provider[0].get_tracer("t").start_as_current_span("ours", context=extracted) as span:
        carrier: dict[str, str] = {}
        propagator.inject(carrier)
    ours = span.get_span_context()
    assert carrier["traceparent"].startswith(f"00-{ours.trace_id:032x}-{ours.span_id:016x}-")
    assert propagator.fields == TraceContextTextMapPropagator().fields


def test_traceresponse_goes_on_the_response_start_only(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    header = TraceResponseHeader()
    start: dict[str, object] = {"type": "http.response.start", "headers": [(b"a", b"b")]}
    body: dict[str, object] = {"type": "http.response.body", "body": b""}
    with provider[0].get_tracer("t").start_as_current_span("server") as span:
        header.inject(start)
        header.inject(body)
    ctx = span.get_span_context()
    flags = f"{int(ctx.trace_flags):02x}"
    value = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{flags}".encode()
    assert start["headers"] == [(b"a", b"b"), (b"traceresponse", value)]
    assert "headers" not in body
    outside: dict[str, object] = {"type": "http.response.start", "headers": []}
    header.inject(outside)  # no span: nothing to report
    assert outside["headers"] == []


@pytest.fixture
def response_header() -> Iterator[None]:
    set_global_response_propagator(TraceResponseHeader())  # type: ignore[no-untyped-call]
    yield
    set_global_response_propagator(None)  # type: ignore[no-untyped-call]


async def test_the_server_span_shows_the_route_template_never_the_request(
    provider: tuple[TracerProvider, InMemorySpanExporter],
    monkeypatch: pytest.MonkeyPatch,
    response_header: None,
) -> None:
    tracer_provider, exporter = provider
    # Even an operator asking OpenTelemetry to capture every header gets none of them.
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", ".*")
    seen: list[tuple[str, bytes]] = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        seen.append((scope["path"], scope["query_string"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"chunk", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    template = route_templates(["/tell-joke"], prefixes=[("/flows/", "/flows/{name}")])
    layer = TracingMiddleware(app, template, tracer_provider=tracer_provider)
    scope = http_scope(
        "/flows/tell_joke",
        "POST",
        headers=[(b"x-api-key", API_KEY.encode()), (b"traceparent", CALLER.encode())],
    )
    scope["query_string"] = b"token=secret-in-the-query"
    sent = await call(layer, scope)
    assert seen == [("/flows/tell_joke", b"token=secret-in-the-query")]  # the app: the real one
    (span,) = exporter.get_finished_spans()  # no per-message send/receive spans
    assert span.name == "POST /flows/{name}"
    assert span.kind is SpanKind.SERVER
    assert span.attributes is not None
    assert dict(span.attributes) == {
        "http.request.method": "POST",
        "http.route": "/flows/{name}",
        "url.path": "/flows/{name}",
        "url.scheme": "http",
        "network.protocol.version": "1.1",
        "server.address": scope["server"][0],
        "server.port": scope["server"][1],
        "client.address": scope["client"][0],
        "http.response.status_code": 200,
    }
    assert span.status.status_code is StatusCode.UNSET
    assert format(span.context.trace_id, "032x") == CALLER.split("-")[1]
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == CALLER.split("-")[2]
    exported = json.dumps(dict(span.attributes))
    assert "tell_joke" not in exported
    assert "secret-in-the-query" not in exported
    assert API_KEY not in exported
    assert sent.headers[b"traceresponse"].startswith(f"00-{CALLER.split('-')[1]}-".encode())

    exporter.clear()
    await call(layer, http_scope("/anything/42"))
    await call(layer, http_scope("/health"))
    (unmatched,) = exporter.get_finished_spans()  # the probe: not traced at all
    assert unmatched.name == "GET"
    assert "http.route" not in (unmatched.attributes or {})
    assert "/anything/42" not in json.dumps(dict(unmatched.attributes or {}))


@pytest.mark.parametrize(
    ("status", "failed"), [(404, False), (429, False), (500, True), (503, True)]
)
async def test_only_a_5xx_marks_the_server_span_failed(
    provider: tuple[TracerProvider, InMemorySpanExporter], status: int, failed: bool
) -> None:
    tracer_provider, exporter = provider

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    layer = TracingMiddleware(app, route_templates(["/x"]), tracer_provider=tracer_provider)
    await call(layer, http_scope("/x", "BREW", [(b"user-agent", b"curl/8")]))
    (span,) = exporter.get_finished_spans()
    assert span.name == "_OTHER /x"  # a made-up method is one span name, not many
    assert span.attributes is not None
    assert span.attributes["http.request.method_original"] == "BREW"
    assert span.attributes["user_agent.original"] == "curl/8"
    assert span.attributes["http.response.status_code"] == status
    assert (span.status.status_code is StatusCode.ERROR) is failed
    assert span.attributes.get("error.type") == (str(status) if failed else None)


async def test_an_unsampled_request_records_nothing_and_still_passes_its_context_on() -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(sampler=ALWAYS_OFF)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    inside: list[trace.SpanContext] = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        inside.append(trace.get_current_span().get_span_context())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    layer = TracingMiddleware(app, route_templates(["/x"]), tracer_provider=tracer_provider)
    await call(layer, http_scope("/x"))
    assert exporter.get_finished_spans() == ()
    (context,) = inside
    assert context.is_valid  # outbound calls still carry a trace id
    assert not context.trace_flags.sampled
    tracer_provider.shutdown()


async def test_browsers_may_send_trace_context_and_read_traceresponse_cross_origin(
    provider: tuple[TracerProvider, InMemorySpanExporter], response_header: None
) -> None:
    origin = b"https://app.example.com"
    stack = build_stack(
        json_app(),
        HttpPolicy(cors_allowed_origins=(origin.decode(),)),
        tracing=Tracing(provider[0], TracingConfig()),
    )
    simple = await call(stack, http_scope(headers=[(b"origin", origin)]))
    same_origin = await call(stack, http_scope())
    preflight = await call(
        stack,
        http_scope("/x", "OPTIONS", [(b"origin", origin),
                                      (b"access-control-request-method", b"POST"),
                                      (b"access-control-request-headers", b"traceparent")]),
    )  # fmt: skip
    exposed = [v for k, v in simple.start["headers"] if k == b"access-control-expose-headers"]
    assert len(exposed) == 1  # one list, the CORS layer's
    assert b"traceresponse" in exposed[0]
    assert b"traceresponse" in simple.headers
    # Same origin: the header, and no CORS header at all.
    assert b"traceresponse" in same_origin.headers
    assert not [k for k in same_origin.headers if k.startswith(b"access-control-")]
    assert preflight.headers[b"access-control-allow-headers"] == b"traceparent"


@pytest.mark.usefixtures("restore_logging")
def test_log_lines_inside_a_span_carry_its_ids(
    provider: tuple[TracerProvider, InMemorySpanExporter], capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", "json", trace_ids=True)
    access = access_logger("json", trace_ids=True)
    structlog.get_logger("t").info("outside")
    with provider[0].get_tracer("t").start_as_current_span("request") as span:
        structlog.get_logger("t").info("inside")
        access.info("request", route="/x")
        ids = current_span_ids()
    sys.stderr.flush()
    lines = {e["event"]: e for e in map(json.loads, capfd.readouterr().err.splitlines())}
    ctx = span.get_span_context()
    assert ids == (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
    for event in ("inside", "request"):
        assert (lines[event]["trace_id"], lines[event]["span_id"]) == ids
    assert "trace_id" not in lines["outside"]


async def test_no_telemetry_builds_no_provider_exporter_thread_or_layer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    """``--no-telemetry`` wins over an endpoint: nothing of tracing exists, nothing leaves."""
    monkeypatch.chdir(str(tmp_path))  # no .env of the developer's
    before = set(sys.modules)
    with FakeCollector() as collector:
        settings = parse_settings(["--no-telemetry", "--otel-endpoint", collector.http_endpoint])
        assert settings.telemetry.otel_exporter_otlp_endpoint == collector.http_endpoint
        service = create_service(APP, settings)
        reply = await call(
            service.asgi,
            http_scope("/tell-joke", "POST", headers=[(b"content-type", b"application/json"),
                                                      (b"traceparent", CALLER.encode())]),
            b'{"name": "Tom"}',
        )  # fmt: skip
        assert reply.status == 200
        assert b"traceresponse" not in reply.headers
        provider = trace.get_tracer_provider()
        flush = getattr(provider, "force_flush", None)
        if flush is not None:  # only if a provider was wrongly set up: make it send now
            flush()
        assert collector.spans() == []
    assert not isinstance(provider, TracerProvider)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("OtelBatch")]
    layers, app = [], service.asgi
    for _ in range(32):  # bounded walk down the stack
        layers.append(type(app).__name__)
        app = getattr(app, "app", None)
        if app is None:
            break
    assert "TracingMiddleware" not in layers
    # What tracing would load (Genkit itself imports the SDK and a logging instrumentation).
    assert not (set(sys.modules) - before) & TRACING_ONLY_MODULES


async def test_grpc_calls_get_a_server_span_each_streams_included(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """OpenTelemetry's interceptor, outermost, around unary and server-streaming calls;
    health checks are not traced."""
    tracer_provider, exporter = provider
    async with serving(tracer_provider=tracer_provider) as harness:
        joke = await harness.stub.TellJoke(
            pb.JokeRequest(name="Tom"), metadata=[("traceparent", CALLER)]
        )
        chunks = [c.text async for c in harness.stub.TellJokeStream(pb.JokeRequest(name="Tom"))]
        health = health_pb2_grpc.HealthStub(harness.channel)
        await health.Check(health_pb2.HealthCheckRequest(service=""))
    assert "Tom" in joke.joke
    assert len(chunks) >= 2
    spans = {s.name: s for s in exporter.get_finished_spans()}
    service = "/genkit.sample.v1.GenkitService"
    assert set(spans) == {f"{service}/TellJoke", f"{service}/TellJokeStream"}
    unary = spans[f"{service}/TellJoke"]
    assert unary.kind is SpanKind.SERVER
    assert unary.parent is not None
    assert format(unary.parent.span_id, "016x") == CALLER.split("-")[2]
    assert spans[f"{service}/TellJokeStream"].parent is None  # no caller context: a new trace
