# SPDX-License-Identifier: Apache-2.0
"""Logging setup: JSON lines with tracebacks, request ids, levels for libraries too."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from genkit_endpoints.core.context import request_id_var
from genkit_endpoints.serving.logging import configure_logging, default_format

pytestmark = pytest.mark.usefixtures("restore_logging")


def lines(err: str) -> list[dict[str, object]]:
    return [json.loads(ln) for ln in err.splitlines() if ln.strip()]


def test_json_lines_include_tracebacks(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    log = structlog.get_logger("t")
    try:
        raise ValueError("kaboom")  # noqa: TRY301 - a real traceback to log
    except ValueError:
        log.exception("failed_thing", item=3)
    (event,) = lines(capsys.readouterr().err)
    assert event["event"] == "failed_thing"
    assert event["level"] == "error"
    assert event["item"] == 3
    assert "Traceback" in str(event["exception"])
    assert "kaboom" in str(event["exception"])


def test_stdlib_records_are_json_too_and_carry_the_request_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", "json")
    token = request_id_var.set("rid-1")
    try:
        logging.getLogger("uvicorn.error").info("hello %s", "world")
    finally:
        request_id_var.reset(token)
    (event,) = lines(capsys.readouterr().err)
    assert event["event"] == "hello world"
    assert event["request_id"] == "rid-1"
    assert event["logger"] == "uvicorn.error"


def test_level_filters_structlog_and_stdlib(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("warning", "json")
    structlog.get_logger("t").info("hidden")
    logging.getLogger("httpx").info("hidden too")
    structlog.get_logger("t").warning("shown")
    assert [e["event"] for e in lines(capsys.readouterr().err)] == ["shown"]


def test_console_format_is_not_json(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "console")
    structlog.get_logger("t").info("pretty", a=1)
    err = capsys.readouterr().err
    assert "pretty" in err
    with pytest.raises(json.JSONDecodeError):
        json.loads(err.splitlines()[0])


def test_unknown_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="log level"):
        configure_logging("loud", "json")


def test_default_format_is_console_in_debug_and_json_otherwise() -> None:
    class Pipe:
        def isatty(self) -> bool:
            return False

    assert default_format(debug=True, stream=Pipe()) == "console"
    assert default_format(debug=False, stream=Pipe()) == "json"
