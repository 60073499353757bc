# SPDX-License-Identifier: Apache-2.0
"""Logging setup: structlog for our events, stdlib records routed through it.

JSON lines in production (tracebacks included as text), a coloured console in DEBUG.
``LOG_LEVEL`` applies to our loggers, to Genkit's structlog events and to library
loggers (uvicorn, httpx, …) alike. Every line inside a request carries ``request_id``,
and with tracing on every line inside a span ``trace_id`` and ``span_id``, so a request's
lines and its trace find each other.
Every line, tracebacks included, passes ``log_masking.SecretMasker`` last, so secrets
(by key name, by shape, or registered by the app) never reach the output.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any, Literal

import orjson
import structlog
from structlog.types import EventDict, ExceptionRenderer, Processor, WrappedLogger

from genkit_endpoints.core.context import current_request_id
from genkit_endpoints.core.timestamps import UtcStamp
from genkit_endpoints.security.masking import SecretMasker
from genkit_endpoints.telemetry.tracing import current_span_ids

LogFormat = Literal["json", "console"]
LEVELS = ("debug", "info", "warning", "error", "critical")


def _add_request_id(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    rid = current_request_id()
    if rid is not None:
        event.setdefault("request_id", rid)
    return event


def _add_trace_ids(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    ids = current_span_ids()
    if ids is not None:
        event.setdefault("trace_id", ids[0])
        event.setdefault("span_id", ids[1])
    return event


def _drop_color_message(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    # uvicorn duplicates its message with ANSI colours in an `extra` field.
    event.pop("color_message", None)
    return event


def _json_dumps(obj: Any, **_: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


def default_format(debug: bool, stream: Any = None) -> LogFormat:
    """Console for people (DEBUG or a terminal), JSON for machines."""
    stream = stream if stream is not None else sys.stderr
    return "console" if debug or stream.isatty() else "json"


def _masked_tracebacks(masker: SecretMasker) -> ExceptionRenderer:
    # The console renders exc_info itself, after every processor, so its traceback text is
    # masked here. Plain, not Rich: Rich shows local variables (keys among them) and
    # interleaves colour codes that would hide a secret's shape.
    plain = structlog.dev.plain_traceback

    def render(sio: Any, exc_info: Any) -> None:
        buffer = io.StringIO()
        plain(buffer, exc_info)
        sio.write(masker.mask_text(buffer.getvalue()))

    return render


def configure_logging(
    level: str = "info",
    fmt: LogFormat = "json",
    *,
    secrets: Iterable[str] = (),
    trace_ids: bool = False,
) -> None:
    """Configure structlog and the stdlib root logger. Call once, from ``main``.

    ``secrets`` are values masked wherever they occur in a line (the app's API keys and
    provider keys): they have no shape the masker could recognise. ``trace_ids`` (tracing
    on) adds the active span's ``trace_id`` and ``span_id`` to every line.
    """
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}")
    numeric = logging.getLevelName(level.upper())
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        *([_add_trace_ids] if trace_ids else []),
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    masker = SecretMasker(secrets)
    renderer: Processor
    if fmt == "json":
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer(serializer=_json_dumps)
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=_masked_tracebacks(masker)
        )
    shared.append(masker)  # last: it sees every field, the formatted traceback included

    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        # A level-filtering wrapper: Genkit leaves an app-chosen level alone.
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), _drop_color_message, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # Servers install their own handlers; route them through ours instead. uvicorn's
    # access logger is left as the server set it (off: the kit logs requests itself).
    for name in ("uvicorn", "uvicorn.error", "genkit"):
        lib = logging.getLogger(name)
        lib.handlers[:] = []
        lib.propagate = True
        lib.setLevel(numeric)


def access_logger(
    fmt: LogFormat, name: str = "genkit_endpoints.access", *, trace_ids: bool = False
) -> Any:
    """The logger for the per-request access line: fast where it matters.

    In JSON mode it is ``JsonAccessLog``, which writes the line itself. On the console it
    is the ordinary logger. Call after ``configure_logging``; the level is the root
    logger's, checked by the caller.
    """
    if fmt != "json":
        return structlog.get_logger(name)
    return JsonAccessLog(sys.stderr.buffer, name, trace_ids=trace_ids)


class JsonAccessLog:
    """The access line in JSON, one ``write`` per line, without structlog's machinery.

    It runs on every request, so it builds the line directly: the same fields in the same
    order as a structlog JSON line (the call's fields, ``event``, ``request_id``,
    ``trace_id`` / ``span_id`` with ``trace_ids``, ``level``, ``logger``, ``timestamp``),
    at a fraction of the cost of the processor chain, when the stdlib logger ``name`` is
    enabled for INFO (``LOG_LEVEL``). Its fields are chosen by the kit
    (route template, never the raw path; no headers), so the masker has nothing to find
    there. ``stamp`` gives the timestamp (tests pass a fixed one).
    """

    def __init__(
        self,
        stream: Any,
        name: str,
        *,
        trace_ids: bool = False,
        stamp: Callable[[], str] | None = None,
    ) -> None:
        self._stream = stream
        self._name = name
        self._level = logging.getLogger(name)
        self._trace_ids = trace_ids
        self._stamp = stamp or UtcStamp(digits=6, suffix="Z")

    def info(self, event: str, **fields: Any) -> None:
        if not self._level.isEnabledFor(logging.INFO):  # LOG_LEVEL, as for every logger
            return
        line = fields
        line["event"] = event
        # The same processors as every other line, called directly.
        _add_request_id(None, "info", line)
        if self._trace_ids:
            _add_trace_ids(None, "info", line)
        line["level"] = "info"
        line["logger"] = self._name
        line["timestamp"] = self._stamp()
        self._stream.write(orjson.dumps(line, default=str, option=orjson.OPT_APPEND_NEWLINE))
        self._stream.flush()
