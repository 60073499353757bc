"""Logging setup (SPEC §5.1): structlog for our events, stdlib records routed through it.

JSON lines in production (tracebacks included as text), a coloured console in DEBUG.
``LOG_LEVEL`` applies to our loggers, to Genkit's structlog events and to library
loggers (uvicorn, httpx, …) alike. Every line inside a request carries ``request_id``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import orjson
import structlog
from structlog.types import EventDict, Processor, WrappedLogger

from genkit_endpoints.context import current_request_id

LogFormat = Literal["json", "console"]
LEVELS = ("debug", "info", "warning", "error", "critical")


def _add_request_id(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    rid = current_request_id()
    if rid is not None:
        event.setdefault("request_id", rid)
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


def configure_logging(level: str = "info", fmt: LogFormat = "json") -> None:
    """Configure structlog and the stdlib root logger. Call once, from ``main``."""
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}")
    numeric = logging.getLevelName(level.upper())
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor
    if fmt == "json":
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer(serializer=_json_dumps)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())

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
