# SPDX-License-Identifier: Apache-2.0
"""Canary for ``genkit_endpoints.compat.opentelemetry``: the copy of a finished span.

Spans are scrubbed before export by copying them with other attributes, events and
status. If an SDK release adds a field the copy does not carry, the copy's OTLP message
differs from its original's and this test fails: run it before widening the SDK range.
"""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from genkit_endpoints.compat.opentelemetry import require_opentelemetry_sdk, span_with


def finished_spans() -> list[ReadableSpan]:
    """A parent and a child with every field set, from a provider of this test alone."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "canary"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("canary", "1.2.3")
    with tracer.start_as_current_span("parent", kind=SpanKind.SERVER) as parent:
        link = Link(parent.get_span_context(), {"why": "linked"})
        with tracer.start_as_current_span(
            "child", kind=SpanKind.CLIENT, links=[link], attributes={"a": "b", "n": 3}
        ) as child:
            child.add_event("happened", {"detail": "x"})
            child.set_status(Status(StatusCode.ERROR, "it broke"))
    provider.shutdown()
    return list(exporter.get_finished_spans())


def test_the_sdk_is_in_the_checked_range() -> None:
    assert require_opentelemetry_sdk()


def test_a_copy_with_the_same_fields_encodes_exactly_like_its_original() -> None:
    spans = finished_spans()
    copies = [
        span_with(s, attributes=dict(s.attributes or {}), events=list(s.events), status=s.status)
        for s in spans
    ]
    assert encode_spans(copies).SerializeToString() == encode_spans(spans).SerializeToString()


def test_a_copy_carries_the_new_fields() -> None:
    child = next(s for s in finished_spans() if s.name == "child")
    copy = span_with(child, attributes={"a": "masked"}, events=[], status=Status(StatusCode.OK))
    assert copy.attributes == {"a": "masked"}
    assert list(copy.events) == []
    assert copy.status.status_code is StatusCode.OK
    assert copy.context == child.context
    assert copy.parent == child.parent
