# SPDX-License-Identifier: Apache-2.0
"""Crash reports to Sentry: the real SDK, sending to a fake ingest on loopback.

What is reported (bugs only), what an event carries (request id, flow, trace, release,
environment) and what it never carries (secrets, frame variables, request headers,
cookies, bodies), that the SDK reports nothing on its own, and that closing the reporter
sends what is queued.
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sentry_sdk
from opentelemetry import trace

from genkit_endpoints.core.context import RequestRecord, record_var, request_id_var
from genkit_endpoints.core.crash import report_unexpected
from genkit_endpoints.core.errors import (
    InternalError,
    InvalidInput,
    InvalidModelOutput,
    RateLimited,
    ServiceUnavailable,
    Unauthenticated,
    UpstreamError,
    UpstreamTimeout,
)
from genkit_endpoints.security.masking import SecretMasker
from genkit_endpoints.telemetry.config import SentryConfig
from genkit_endpoints.telemetry.sentry import (
    SentryExtraMissing,
    SentryReporter,
    default_release,
    require_sentry,
    scrub_event,
    setup_sentry,
)
from tests.support.sentry_ingest import SentryIngest, tag

API_KEY = "unit-api-key-0123456789abcdef"  # a registered secret: no shape to recognise
PROMPT_SECRET = "sk-live-abcdefghijklmnopqrstuvwxyz012345"  # noqa: S105 - recognised by its shape


@pytest.fixture(scope="module")
def ingest() -> Iterator[SentryIngest]:
    with SentryIngest().running() as server:
        yield server


_projects = itertools.count(1)


@dataclass
class Sentry:
    """The installed reporter and the events its project received."""

    reporter: SentryReporter
    ingest: SentryIngest
    project: str

    def events(self) -> list[dict[str, Any]]:
        return [
            json.loads(payload)
            for r in self.ingest.received
            if r.project == self.project
            for header, payload in r.items
            if header.get("type") == "event"
        ]


@pytest.fixture
def sentry(ingest: SentryIngest) -> Iterator[Sentry]:
    """The SDK set up as the service sets it up, on a project of its own at the ingest."""
    project = next(_projects)
    cfg = SentryConfig(ingest.dsn(project=project), environment="unit")
    reporter = setup_sentry(cfg, secrets=[API_KEY])
    assert reporter is not None
    try:
        yield Sentry(reporter, ingest, str(project))
    finally:
        reporter.close()


def raise_bug(text: str) -> None:
    prompt = text  # a frame variable holding the request's text
    raise KeyError(f"no handler for {prompt}")


def bug(text: str = f"boom {PROMPT_SECRET} {API_KEY}") -> KeyError:
    try:
        raise_bug(text)
    except KeyError as exc:
        return exc
    raise AssertionError("unreachable")


def test_a_bug_is_one_event_with_the_request_id_and_flow_and_no_secret(sentry: Sentry) -> None:
    rid_token = request_id_var.set("req-abc-123")
    record_token = record_var.set(RequestRecord(flow="shout"))
    try:
        report_unexpected(bug())
    finally:
        record_var.reset(record_token)
        request_id_var.reset(rid_token)
    sentry.reporter.close()  # sends the queued event before it returns
    (event,) = sentry.events()
    assert tag(event, "request_id") == "req-abc-123"
    assert tag(event, "flow") == "shout"
    assert event["release"] == default_release()
    assert event["environment"] == "unit"
    (exc,) = event["exception"]["values"]
    assert exc["type"] == "KeyError"
    assert "no handler for boom" in exc["value"]  # the message is there, masked
    assert "***" in exc["value"]
    frames = exc["stacktrace"]["frames"]
    assert [f["function"] for f in frames][-1] == "raise_bug"
    assert all("vars" not in f for f in frames)
    assert "request" not in event
    assert "user" not in event
    sent = sentry.ingest.wire_bytes()
    assert PROMPT_SECRET.encode() not in sent
    assert API_KEY.encode() not in sent


@pytest.mark.parametrize(
    "refusal",
    [
        InvalidInput(),
        Unauthenticated(),
        RateLimited(),
        ServiceUnavailable(),
        UpstreamTimeout(),
        UpstreamError(),
        InvalidModelOutput(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_raised_on_purpose_are_never_reported(sentry: Sentry, refusal: Exception) -> None:
    report_unexpected(refusal)
    report_unexpected(InternalError())  # a 500 raised on purpose is still a bug
    sentry.reporter.close()
    (event,) = sentry.events()
    assert event["exception"]["values"][0]["type"] == "InternalError"


def test_the_event_carries_the_active_span(sentry: Sentry) -> None:
    context = trace.SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=False,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )
    with trace.use_span(trace.NonRecordingSpan(context)):
        report_unexpected(bug("plain"))
    sentry.reporter.close()
    (event,) = sentry.events()
    assert event["contexts"]["trace"]["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert event["contexts"]["trace"]["span_id"] == "b7ad6b7169203331"


def test_nothing_is_reported_unless_the_kit_reports_it(sentry: Sentry) -> None:
    """No logging, excepthook or thread integration: an error log line, an exception
    that ends a thread and one that reaches sys.excepthook are not events."""
    assert set(sentry_sdk.get_client().integrations) == {"dedupe"}
    try:
        raise_bug("logged")
    except KeyError:
        logging.getLogger("some.library").exception("it failed")
    thread = threading.Thread(target=raise_bug, args=("in a thread",))
    previous = threading.excepthook
    threading.excepthook = lambda args: None  # keep the test output quiet
    try:
        thread.start()
        thread.join(5)
    finally:
        threading.excepthook = previous
    try:
        raise_bug("uncaught")
    except KeyError:
        sys.excepthook(*sys.exc_info())  # type: ignore[arg-type]
    sentry.reporter.close()
    assert sentry.events() == []


def test_the_same_exception_reported_twice_is_one_event(sentry: Sentry) -> None:
    exc = bug("twice")
    report_unexpected(exc)
    report_unexpected(exc)
    sentry.reporter.close()
    assert len(sentry.events()) == 1


async def test_aclose_flushes_and_stops_reporting(sentry: Sentry) -> None:
    report_unexpected(bug("before close"))
    await sentry.reporter.aclose()
    assert len(sentry.events()) == 1  # arrived before aclose returned
    report_unexpected(bug("after close"))  # uninstalled: nowhere to go, and no error
    assert len(sentry.events()) == 1


def test_scrub_drops_request_data_user_breadcrumbs_and_frame_variables() -> None:
    event: dict[str, Any] = {
        "message": f"called with Authorization: Bearer {API_KEY}",
        "request": {
            "method": "POST",
            "url": f"http://api.example.com/shout?api_key={API_KEY}",
            "headers": {"Authorization": f"Bearer {API_KEY}", "Cookie": "session=1"},
            "cookies": {"session": "1"},
            "data": {"text": PROMPT_SECRET},
            "query_string": f"api_key={API_KEY}",
            "env": {"REMOTE_ADDR": "10.0.0.1"},
        },
        "user": {"ip_address": "10.0.0.1"},
        "breadcrumbs": {"values": [{"message": PROMPT_SECRET}]},
        "exception": {
            "values": [
                {
                    "type": "KeyError",
                    "value": API_KEY,
                    "stacktrace": {"frames": [{"function": "f", "vars": {"t": PROMPT_SECRET}}]},
                }
            ]
        },
        "extra": {"openai_api_key": "whatever-it-is", "note": f"key {API_KEY}"},
    }
    scrubbed = scrub_event(SecretMasker([API_KEY]), event)
    assert scrubbed["request"] == {"method": "POST", "url": "http://api.example.com/shout"}
    assert "user" not in scrubbed
    assert "breadcrumbs" not in scrubbed
    (exc,) = scrubbed["exception"]["values"]
    assert exc["stacktrace"]["frames"] == [{"function": "f"}]
    assert exc["value"] == "***"
    assert scrubbed["extra"] == {"openai_api_key": "***", "note": "key ***"}
    assert API_KEY not in repr(scrubbed)
    assert PROMPT_SECRET not in repr(scrubbed)


def test_without_the_extra_a_dsn_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentry_sdk", None)  # as if the extra were not installed
    require_sentry(None)  # no DSN: nothing needed
    assert setup_sentry(None) is None
    with pytest.raises(SentryExtraMissing, match=r"pip install 'genkit-endpoints\[sentry\]'"):
        require_sentry(SentryConfig("http://key@127.0.0.1:9/1"))
    with pytest.raises(SentryExtraMissing, match="SENTRY_DSN"):
        setup_sentry(SentryConfig("http://key@127.0.0.1:9/1"))


def test_the_sdk_is_told_to_collect_nothing_personal(sentry: Sentry) -> None:
    """The switches differ by major version (3.x has ``data_collection``); whichever is
    installed must have them off, not only rely on the scrubbing afterwards."""
    options = sentry_sdk.get_client().options
    collection = options.get("data_collection")
    if collection is not None:
        assert collection["user_info"] is False
        assert collection["stack_frame_variables"] is False
        assert collection["http_bodies"] == []
        assert collection["cookies"]["mode"] == "off"
        assert collection["http_headers"]["request"]["mode"] == "off"
        assert collection["gen_ai"] == {"inputs": False, "outputs": False}
    else:
        assert options["send_default_pii"] is False
        assert options["include_local_variables"] is False
        assert options["max_request_body_size"] == "never"
    assert options["traces_sample_rate"] is None
    assert options["max_breadcrumbs"] == 0
    assert options["auto_session_tracking"] is False
