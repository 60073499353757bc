# SPDX-License-Identifier: Apache-2.0
"""Server-Sent Events framing for flow streams and the Genkit callable protocol.

Pure functions from stream events to bytes; the transport only writes them. A failure
after the stream started ends it with one final error frame instead of a cut connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import structlog

from genkit_endpoints.core.crash import report_unexpected
from genkit_endpoints.core.errors import EndpointError
from genkit_endpoints.core.routes import Chunk, Final, FlowRoute, as_endpoint_error

SSE_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-type", "text/event-stream; charset=utf-8"),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
)

_log = structlog.get_logger(__name__)


def data_frame(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def error_frame(problem: dict[str, Any]) -> bytes:
    return b"event: error\ndata: " + orjson.dumps(problem) + b"\n\n"


def _failure(exc: Exception) -> EndpointError:
    err = as_endpoint_error(exc)
    if not isinstance(exc, EndpointError):
        _log.error("stream_failed", exc_info=exc)
        report_unexpected(exc)
    return err


async def route_frames(
    route: FlowRoute,
    events: AsyncIterator[Chunk | Final],
    *,
    instance: str,
    request_id: str | None,
) -> AsyncIterator[bytes]:
    """``data: {"chunk": …}`` frames, then ``{"done": true, <key>: output}``."""
    key = route.stream_key or "result"
    try:
        async for event in events:
            if isinstance(event, Chunk):
                yield data_frame({"chunk": event.value})
            else:
                yield data_frame({"done": True, key: event.output})
    except Exception as exc:
        yield error_frame(_failure(exc).problem(instance=instance, request_id=request_id))


async def callable_frames(events: AsyncIterator[Chunk | Final]) -> AsyncIterator[bytes]:
    """``{"message": …}`` frames, then ``{"result": …}`` or ``{"error": …}``.

    Only ``data:`` lines: the official Genkit clients parse this mode strictly.
    """
    try:
        async for event in events:
            if isinstance(event, Chunk):
                yield data_frame({"message": event.value})
            else:
                yield data_frame({"result": event.output})
    except Exception as exc:
        err = _failure(exc)
        yield data_frame({"error": {"status": err.grpc_code, "message": err.detail}})
