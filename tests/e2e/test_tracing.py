# SPDX-License-Identifier: Apache-2.0
"""Tracing end to end: real servers exporting with the real OTLP exporters to a fake
collector (``tests/support/otlp_collector.py``), calling the fake provider.

One server process per test, each a configuration no other test needs, so the four
together cover: every framework (and two of the servers), both OTLP protocols, REST and
gRPC, a continued and an untrusted incoming trace, content capture off and on, the
endpoint from the environment and from ``--otel-endpoint``, spans flushed on SIGTERM,
and Redis command spans. Each checks the trace tree the collector
received — server span → flow → generate → model (and tool) → the provider request's
client span — with its parent ids, that the provider request carried ``traceparent`` of
the same trace, and that no seeded secret (API key, provider key, collector header,
request header, query string, prompt text) is anywhere in the bytes that left.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import httpx

from endpoints_hello.generated import genkit_sample_pb2 as pb
from endpoints_hello.generated import genkit_sample_pb2_grpc as pb_grpc
from tests.fakes.provider import FakeProvider, Reply, ToolCall
from tests.support.otlp_collector import CLIENT, SERVER, ExportedSpan, FakeCollector
from tests.support.redis_server import RedisServer
from tests.support.server import ServerProcess, run_server

API_KEY = "tracer-key-7f3a9c2e5b1d4f60a8e2"
OPENAI_KEY = "sk-proj-SEEDEDopenaiKEY0123456789abcdef"
GEMINI_KEY = "AIza" + "SeededGeminiKey0123456789abcdefghij"  # the shape: AIza + 35
COLLECTOR_TOKEN = "collector-token-5e8d1c0b7a6f"  # noqa: S105 - seeded, must never leave
HEADER_SECRET = "hdr-secret-4c1f9e2d7b3a"  # noqa: S105
QUERY_SECRET = "query-secret-9f8e7d6c5b"  # noqa: S105
PROMPT_TOKEN = "sk-live-PROMPTSECRET0123456789abcdef"  # noqa: S105
MARKER = "Zanzibar"  # a word of the prompt, to tell whether prompt text was exported
# The text to translate: the marker, and secrets a careless user pasted into it.
PROMPT = f"{MARKER} lighthouse, my key is {API_KEY} and {PROMPT_TOKEN}"
SEEDED = (API_KEY, OPENAI_KEY, GEMINI_KEY, COLLECTOR_TOKEN, HEADER_SECRET, QUERY_SECRET,
          PROMPT_TOKEN)  # fmt: skip
TRANSLATION = {
    "original_text": "x",
    "translated_text": "bonjour",
    "target_language": "French",
    "confidence": "high",
}
GRPC_TELL_JOKE = "/genkit.sample.v1.GenkitService/TellJoke"


def new_parent() -> tuple[str, str, str]:
    """(trace id, span id, traceparent) of a caller's span."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def tracing_env(collector: FakeCollector, protocol: str, **extra: str) -> dict[str, str]:
    endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer {COLLECTOR_TOKEN}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: spans leave soon after they end
        "API_KEYS": f"tracer:{API_KEY}",
        "LLM_MAX_RETRIES": "0",
        **extra,
    }


def openai_env(fake: FakeProvider) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": fake.openai_base_url,
        "MODEL": "openai/gpt-4o-mini",
    }


@contextmanager
def traced_server(
    tmp_path: Path, framework: str, env: dict[str, str], *, server: str = "uvicorn",
    grpc_on: bool = False, args: tuple[str, ...] = (),
) -> Iterator[ServerProcess]:  # fmt: skip
    args = ("--framework", framework, "--server", server, *(() if grpc_on else ("--no-grpc",)),
            *args)  # fmt: skip
    with run_server(tmp_path, args=args, env=env, probe="/ready") as process:
        yield process


def server_span(spans: list[ExportedSpan], trace_id: str, name: str) -> ExportedSpan | None:
    found = [s for s in spans if s.trace_id == trace_id and s.kind == SERVER and s.name == name]
    assert len(found) <= 1, found
    return found[0] if found else None


def wait_for_server_span(collector: FakeCollector, trace_id: str, name: str) -> list[ExportedSpan]:
    """The trace's spans, once its server span arrived (it ends last, so it leaves last)."""
    spans = collector.wait_for(lambda got: server_span(got, trace_id, name) is not None)
    return [s for s in spans if s.trace_id == trace_id]


def one(spans: list[ExportedSpan], name: str, parent: ExportedSpan) -> ExportedSpan:
    found = [s for s in spans if s.name == name and s.parent_span_id == parent.span_id]
    assert len(found) == 1, (name, parent.name, [(s.name, s.parent_span_id) for s in spans])
    return found[0]


def assert_model_call_tree(
    trace: list[ExportedSpan], root: ExportedSpan, flow: str, model: str, calls: int
) -> list[ExportedSpan]:
    """server → flow → generate → ``calls`` model spans → one client span each; the client spans."""
    flow_span = one(trace, flow, root)
    generate = one(trace, "generate", flow_span)
    models = [s for s in trace if s.name == model and s.parent_span_id == generate.span_id]
    assert len(models) == calls, [(s.name, s.parent_span_id) for s in trace]
    clients = []
    for model_span in models:
        assert model_span.attributes["genkit:metadata:subtype"] == "model"
        below = [s for s in trace if s.parent_span_id == model_span.span_id]
        (client,) = [s for s in below if s.kind == CLIENT]
        clients.append(client)
    return clients


def descends_from(span: ExportedSpan, root: ExportedSpan, trace: list[ExportedSpan]) -> bool:
    by_id = {s.span_id: s for s in trace}
    current: ExportedSpan | None = span
    for _ in range(len(trace)):  # bounded: a parent cycle would otherwise never end
        if current is None or current.parent_span_id is None:
            return False
        if current.parent_span_id == root.span_id:
            return True
        current = by_id.get(current.parent_span_id)
    return False


def assert_provider_saw(fake: FakeProvider, clients: list[ExportedSpan]) -> None:
    """Each generate request reached the provider with the traceparent of its client span."""
    sent = [q.headers.get("traceparent", "") for q in fake.requests if q.kind == "generate"]
    # Without the flags: a trace the SDK started itself is flagged random as well (03).
    expected = [f"00-{c.trace_id}-{c.span_id}-" for c in clients]
    assert sorted(t[:-2] for t in sent) == sorted(expected)


def assert_no_secret_left(collector: FakeCollector) -> None:
    raw = collector.raw()
    assert b"generate" in raw  # the bytes are the spans: the check below means something
    for secret in SEEDED:
        assert secret.encode() not in raw, secret


def request_lines(server: ServerProcess, request_id: str) -> list[dict[str, object]]:
    """The log lines of one request, once its access line is written."""
    deadline = time.monotonic() + 10
    while True:
        lines = [e for e in server.log_events() if e.get("request_id") == request_id]
        if any(e.get("logger") == "genkit_endpoints.access" for e in lines):
            return lines
        assert time.monotonic() < deadline, server.log_text()[-3000:]
        time.sleep(0.05)


def logged(server: ServerProcess, **fields: object) -> dict[str, object]:
    """The first log line with ``fields``, waiting for it to be written."""
    deadline = time.monotonic() + 10
    while True:
        for line in server.log_events():
            if all(line.get(k) == v for k, v in fields.items()):
                return line
        assert time.monotonic() < deadline, server.log_text()[-3000:]
        time.sleep(0.05)


def test_fastapi_rest_and_grpc_over_otlp_http_continue_the_callers_trace(tmp_path: Path) -> None:
    with (
        FakeCollector() as collector,
        FakeProvider() as fake,
        traced_server(tmp_path, "fastapi", {**tracing_env(collector, "http/protobuf"),
                                            **openai_env(fake)}, grpc_on=True) as server,
    ):  # fmt: skip
        # REST: translate calls the model, the tool, the model again.
        fake.script(
            Reply(tool_call=ToolCall("get_current_time", {"timezone": "UTC"})),
            Reply(text=json.dumps(TRANSLATION)),
        )
        trace_id, parent_id, traceparent = new_parent()
        response = httpx.post(
            f"{server.base_url}/translate?ref={QUERY_SECRET}",
            json={"text": PROMPT},
            headers={
                "authorization": f"Bearer {API_KEY}",
                "traceparent": traceparent,
                "x-debug-secret": HEADER_SECRET,
            },
            timeout=30,
        )
        assert response.status_code == 200, response.text
        trace = wait_for_server_span(collector, trace_id, "POST /translate")
        root = server_span(trace, trace_id, "POST /translate")
        assert root is not None
        assert root.parent_span_id == parent_id
        assert root.service_name == "endpoints-hello"
        assert root.attributes["http.route"] == "/translate"
        # The stable HTTP conventions, and never the query string.
        assert root.attributes["url.path"] == "/translate"
        assert "url.query" not in root.attributes
        assert root.attributes["http.request.method"] == "POST"
        assert root.attributes["http.response.status_code"] == 200
        assert response.headers["traceresponse"] == f"00-{trace_id}-{root.span_id}-01"
        clients = assert_model_call_tree(trace, root, "translate_text", "openai/gpt-4o-mini", 2)
        generate = one(trace, "generate", one(trace, "translate_text", root))
        one(trace, "get_current_time", generate)  # the tool, beside the two model calls
        assert_provider_saw(fake, clients)
        # Every line of the request names the trace; the access line the server span.
        lines = request_lines(server, response.headers["x-request-id"])
        assert {line.get("trace_id") for line in lines} == {trace_id}
        (access,) = [e for e in lines if e.get("logger") == "genkit_endpoints.access"]
        assert access["span_id"] == root.span_id

        # gRPC: the same tree under the RPC's server span.
        fake.reset()
        fake.script(Reply(text="Why did Tom cross the road?"))
        grpc_trace_id, grpc_parent_id, grpc_traceparent = new_parent()
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            reply = pb_grpc.GenkitServiceStub(channel).TellJoke(
                pb.JokeRequest(name="Tom"),
                metadata=[("traceparent", grpc_traceparent), ("x-api-key", API_KEY)],
                timeout=30,
            )
        assert reply.joke == "Why did Tom cross the road?"
        grpc_trace = wait_for_server_span(collector, grpc_trace_id, GRPC_TELL_JOKE)
        grpc_root = server_span(grpc_trace, grpc_trace_id, GRPC_TELL_JOKE)
        assert grpc_root is not None
        assert grpc_root.parent_span_id == grpc_parent_id
        grpc_clients = assert_model_call_tree(
            grpc_trace, grpc_root, "tell_joke", "openai/gpt-4o-mini", 1
        )
        assert_provider_saw(fake, grpc_clients)
        rpc_line = logged(server, event="grpc_request", trace_id=grpc_trace_id)
        assert rpc_line["span_id"] == grpc_root.span_id

        # The collector got its header; nothing seeded left the service; no probe traced.
        assert collector.export_headers()[0]["authorization"] == f"Bearer {COLLECTOR_TOKEN}"
        assert_no_secret_left(collector)
        assert MARKER.encode() not in collector.raw()  # no prompt text without capture
        assert not [s for s in collector.spans() if s.name in ("GET /health", "GET /ready")]


def test_litestar_over_otlp_grpc_captures_content_masked(tmp_path: Path) -> None:
    with FakeCollector() as collector, FakeProvider() as fake:
        env = {
            **tracing_env(collector, "grpc"),
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true",
            "GEMINI_API_KEY": GEMINI_KEY,
            "GEMINI_BASE_URL": fake.gemini_base_url,
        }
        with traced_server(tmp_path, "litestar", env) as server:
            fake.script(Reply(text="A joke about a lighthouse."))
            trace_id, parent_id, traceparent = new_parent()
            response = httpx.post(
                f"{server.base_url}/tell-joke",
                json={"name": PROMPT},
                headers={"x-api-key": API_KEY, "traceparent": traceparent},
                timeout=30,
            )
            assert response.status_code == 200, response.text
            trace = wait_for_server_span(collector, trace_id, "POST /tell-joke")
        root = server_span(trace, trace_id, "POST /tell-joke")
        assert root is not None
        assert root.parent_span_id == parent_id
        clients = assert_model_call_tree(trace, root, "tell_joke", "googleai/gemini-2.5-flash", 1)
        assert_provider_saw(fake, clients)
        # The prompt is there, as the operator asked, with every secret in it masked.
        flow_input = str(one(trace, "tell_joke", root).attributes["genkit:input"])
        assert MARKER in flow_input
        assert "***" in flow_input
        assert b"A joke about a lighthouse." in collector.raw()  # the completion too
        assert_no_secret_left(collector)


def test_quart_on_hypercorn_continues_the_callers_trace_and_flushes_it_on_sigterm(
    tmp_path: Path,
) -> None:
    with FakeCollector() as collector, FakeProvider() as fake:
        # Batches would leave only after a minute: what arrives, the shutdown flushed.
        env = {
            **tracing_env(collector, "http/protobuf"),
            **openai_env(fake),
            "OTEL_BSP_SCHEDULE_DELAY": "60000",
        }
        # The endpoint from the command line this time.
        del env["OTEL_EXPORTER_OTLP_ENDPOINT"]
        flag = ("--otel-endpoint", collector.http_endpoint)
        with traced_server(tmp_path, "quart", env, server="hypercorn", args=flag) as server:
            fake.script(Reply(text="Arr, matey."))
            trace_id, parent_id, traceparent = new_parent()
            response = httpx.post(
                f"{server.base_url}/chat",
                json={"question": "Where is the treasure?"},
                headers={"x-api-key": API_KEY, "traceparent": traceparent},
                timeout=30,
            )
            assert response.status_code == 200, response.text
            assert not collector.spans()  # still buffered
        # The server is gone (SIGTERM, exit): its last spans left on the way out.
        trace = wait_for_server_span(collector, trace_id, "POST /chat")
        root = server_span(trace, trace_id, "POST /chat")
        assert root is not None
        assert root.parent_span_id == parent_id
        assert response.headers["traceresponse"] == f"00-{trace_id}-{root.span_id}-01"
        clients = assert_model_call_tree(trace, root, "pirate_chat", "openai/gpt-4o-mini", 1)
        assert_provider_saw(fake, clients)


def test_untrusted_incoming_trace_starts_a_new_trace_on_rest_and_grpc(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Also with the shared state on Redis: its commands are spans of the request."""
    namespace = redis_server.namespace()
    with FakeCollector() as collector, FakeProvider() as fake:
        env = {
            **tracing_env(collector, "http/protobuf", TRUST_INCOMING_TRACE="false"),
            **openai_env(fake),
            "REDIS_URL": redis_server.url,
            **{f"{feature}_NAMESPACE": namespace for feature in ("RATE_LIMIT", "CACHE", "CB")},
        }
        with traced_server(tmp_path, "fastapi", env, grpc_on=True) as server:
            fake.script(Reply(text="A joke."), Reply(text="Another joke."))
            caller_trace, _, traceparent = new_parent()
            response = httpx.post(
                f"{server.base_url}/tell-joke",
                json={"name": "Tom"},
                headers={
                    "x-api-key": API_KEY,
                    "traceparent": traceparent,
                    "baggage": "tenant=someone-else",
                },
                timeout=30,
            )
            assert response.status_code == 200, response.text
            _, trace_id, span_id, _ = response.headers["traceresponse"].split("-")
            with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
                pb_grpc.GenkitServiceStub(channel).TellJoke(
                    pb.JokeRequest(name="Tom"),
                    metadata=[("traceparent", traceparent), ("x-api-key", API_KEY)],
                    timeout=30,
                )
            rest = wait_for_server_span(collector, trace_id, "POST /tell-joke")
            spans = collector.wait_for(
                lambda got: any(s.name == GRPC_TELL_JOKE and s.kind == SERVER for s in got)
            )
        assert trace_id != caller_trace
        root = server_span(rest, trace_id, "POST /tell-joke")
        assert root is not None
        assert (root.span_id, root.parent_span_id) == (span_id, None)  # a root: a new trace
        (grpc_root,) = [s for s in spans if s.name == GRPC_TELL_JOKE]
        assert grpc_root.parent_span_id is None
        assert grpc_root.trace_id not in (caller_trace, trace_id)
        assert not [s for s in spans if s.trace_id == caller_trace]
        # The rate limit's and the breaker's Redis commands, in the request's trace, with
        # their arguments (keys: the principal; values: cached output) never recorded.
        commands = [s for s in rest if s.attributes.get("db.system") == "redis"]
        assert commands
        for command in commands:
            assert command.kind == CLIENT
            assert descends_from(command, root, rest)
            # Every key starts with the namespace: recorded arguments would show it.
            assert namespace not in json.dumps(command.attributes)
        # The provider still gets the (new) trace.
        assert_provider_saw(
            fake,
            [
                *assert_model_call_tree(rest, root, "tell_joke", "openai/gpt-4o-mini", 1),
                *assert_model_call_tree(
                    [s for s in spans if s.trace_id == grpc_root.trace_id],
                    grpc_root, "tell_joke", "openai/gpt-4o-mini", 1,
                ),
            ],
        )  # fmt: skip
