# SPDX-License-Identifier: Apache-2.0
"""The JSON access line is written directly (it runs on every request); it must stay the
line structlog's own JSON pipeline would write for the same fields: same keys, same
order, same values, one line per call."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime

import orjson
import pytest
import structlog
from structlog.types import EventDict, WrappedLogger

from genkit_endpoints.core.context import request_id_var
from genkit_endpoints.serving.logging import JsonAccessLog

FIELDS = {
    "method": "POST",
    "route": "/flows/{name}",
    "status": 200,
    "duration_ms": 1.234,
    "bytes": 57,
    "client_ip": "203.0.113.9",
    "principal": None,
}
STAMP = "2026-01-31T09:15:02.041207Z"
NAME = "genkit_endpoints.access"


def structlog_line(buffer: io.BytesIO, name: str) -> structlog.typing.FilteringBoundLogger:
    """The same line through structlog's JSON processors, for comparison."""

    def request_id(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
        rid = request_id_var.get()
        if rid is not None:
            event.setdefault("request_id", rid)
        return event

    def logger_name(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
        event["logger"] = name
        return event

    def stamp(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
        event["timestamp"] = STAMP
        return event

    return structlog.wrap_logger(  # type: ignore[no-any-return]
        structlog.BytesLogger(buffer),
        processors=[
            request_id,
            structlog.processors.add_log_level,
            logger_name,
            stamp,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
    )


@pytest.fixture(autouse=True)
def access_at_info() -> Iterator[None]:
    logger = logging.getLogger(NAME)
    before = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(before)


def test_the_direct_line_is_the_line_structlog_writes() -> None:
    ours, theirs = io.BytesIO(), io.BytesIO()
    direct = JsonAccessLog(ours, NAME, stamp=lambda: STAMP)
    reference = structlog_line(theirs, NAME)
    token = request_id_var.set("0af7651916cd43dd8448eb211c80319c")
    try:
        for _ in range(2):
            direct.info("request", **FIELDS)
            reference.info("request", **FIELDS)
    finally:
        request_id_var.reset(token)
    direct.info("request", **FIELDS)  # outside a request: no request id
    reference.info("request", **FIELDS)
    assert ours.getvalue() == theirs.getvalue()
    first = json.loads(ours.getvalue().splitlines()[0])
    assert list(first) == [*FIELDS, "event", "request_id", "level", "logger", "timestamp"]


def test_by_default_the_timestamp_is_now_in_utc() -> None:
    buffer = io.BytesIO()
    JsonAccessLog(buffer, NAME).info("request", route="/x")
    stamp = json.loads(buffer.getvalue())["timestamp"]
    assert stamp.endswith("Z")
    assert datetime.fromisoformat(stamp.replace("Z", "+00:00")).tzinfo is not None


def test_below_info_nothing_is_written() -> None:
    logging.getLogger(NAME).setLevel(logging.WARNING)
    buffer = io.BytesIO()
    JsonAccessLog(buffer, NAME).info("request", route="/x")
    assert buffer.getvalue() == b""
