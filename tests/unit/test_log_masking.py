# SPDX-License-Identifier: Apache-2.0
"""Secret masking in logs: by key name, by shape, by value.

The processor is tested directly, then end to end through ``configure_logging`` on real
structlog and stdlib loggers, asserting on the bytes written to stderr.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from genkit_endpoints import load_settings, setup_logging
from genkit_endpoints.core.context import request_id_var
from genkit_endpoints.security.masking import (
    CYCLE,
    MASK,
    TOO_DEEP,
    SecretMasker,
    api_key_secrets,
    is_secret_key,
    secret_values,
)
from genkit_endpoints.serving.logging import configure_logging

GOOGLE = "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW"  # AIza + 35
OPENAI = "sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34"
ANTHROPIC = "sk-ant-api03-Zz98Yy76Xx54Ww32Vv10Uu"
GITHUB = "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
SLACK = "xoxb-123456789012-abcdefghijkl"
AWS = "AKIAIOSFODNN7EXAMPLE"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV"
SHAPELESS = "plain-configured-key-0042"  # only masked because it is registered


pytestmark = pytest.mark.usefixtures("restore_logging")


def masked(event: dict[str, Any], *secrets: str) -> dict[str, Any]:
    return SecretMasker(secrets)(None, "info", dict(event))


def lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in err.splitlines() if ln.strip()]


# Key names.

SECRET_KEYS = [
    "api_key", "apikey", "x-api-key", "X-API-Key", "x_goog_api_key", "gemini_api_key",
    "API_KEYS", "apiKey", "authorization", "Proxy-Authorization", "password", "passwd",
    "db_password", "secret", "client_secret", "clientSecret", "token", "access_token",
    "refresh_token", "accessToken", "id_token", "cookie", "set-cookie", "Set-Cookie",
    "private_key", "secret_key", "dsn", "sentry_dsn", "credentials", "basic_auth",
]  # fmt: skip
INNOCENT_KEYS = [
    "max_tokens", "tokens", "input_tokens", "output_tokens", "token_count", "total_tokens",
    "tokenizer", "secretary", "keyboard", "key_count", "key", "cache_key", "api_key_id",
    "grpc_tls_key", "author", "auth_method", "monkey", "request_id", "path", "method",
    "status", "route",
]  # fmt: skip


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_values_under_secret_key_names_are_masked(key: str) -> None:
    assert is_secret_key(key)
    assert masked({"event": "x", key: "value-1234567"})[key] == MASK
    assert masked({"event": "x", "nested": {key: 12345678}})["nested"][key] == MASK


@pytest.mark.parametrize("key", INNOCENT_KEYS)
def test_values_under_innocent_key_names_are_kept(key: str) -> None:
    assert not is_secret_key(key)
    assert masked({"event": "x", key: "value-1234567"})[key] == "value-1234567"
    assert masked({"event": "x", "usage": {key: 512}})["usage"][key] == 512


def test_unset_secrets_stay_visible_as_unset() -> None:
    event = {"event": "x", "api_key": None, "password": "", "token": False}
    assert masked(event) == event


# Nested structures.


def test_masking_walks_nested_dicts_lists_tuples_and_sets() -> None:
    event = {
        "event": "call",
        "request": {
            "headers": [("x-api-key", "k-1234567"), ("accept", "*/*")],
            "raw": [(b"authorization", b"Bearer abcdefghijk")],
            "body": {"messages": [{"text": f"use {GOOGLE}"}], "config": {"token": "t-99999999"}},
        },
        "tags": {f"key {OPENAI}"},
        "pair": ("password", "hunter2-hunter2"),
    }
    out = masked(event)
    assert out["request"]["headers"] == [("x-api-key", MASK), ("accept", "*/*")]
    assert out["request"]["raw"] == [(b"authorization", MASK)]
    assert out["request"]["body"] == {
        "messages": [{"text": "use AIza***"}],
        "config": {"token": MASK},
    }
    assert out["tags"] == ["key sk-proj-***"]
    assert out["pair"] == ("password", MASK)


def test_the_callers_structures_are_not_changed_and_clean_ones_are_not_copied() -> None:
    inner = {"token": "t-99999999", "n": 1}
    clean = {"a": [1, 2, {"b": "text"}]}
    event = {"event": "x", "inner": inner, "clean": clean}
    out = masked(event)
    assert inner == {"token": "t-99999999", "n": 1}
    assert out["inner"] == {"token": MASK, "n": 1}
    assert out["clean"] is clean


def test_cycles_and_deep_nesting_do_not_break_logging() -> None:
    loop: dict[str, Any] = {"token": "t-99999999"}
    loop["self"] = loop
    deep: list[Any] = [GOOGLE]
    for _ in range(5000):
        deep = [deep]
    out = masked({"event": "x", "loop": loop, "deep": deep})
    assert out["loop"] == {"token": MASK, "self": CYCLE}
    assert GOOGLE not in json.dumps(out)
    assert TOO_DEEP in json.dumps(out)


class _Url:
    def __str__(self) -> str:
        return "redis://cache:pw-0123456@redis:6379/0"


class _Broken:
    def __str__(self) -> str:
        raise RuntimeError("no")


def test_other_objects_are_masked_as_their_text() -> None:
    out = masked({"event": "x", "url": _Url(), "broken": _Broken(), "n": 3.5, "flag": True})
    assert out["url"] == "redis://cache:***@redis:6379/0"
    assert out["broken"] == "<unprintable>"
    assert (out["n"], out["flag"]) == (3.5, True)


# Shapes inside strings.

SHAPES = [
    ("Authorization: Bearer abc.DEF-123_456~x", "Authorization: Bearer ***"),
    ("auth header bearer 0123456789abcdef", "auth header bearer ***"),
    ("Basic dXNlcjpwYXNzd29yZA==", "Basic ***"),
    (f"key {GOOGLE} used", "key AIza*** used"),
    (f"openai {OPENAI}.", "openai sk-proj-***."),
    (f"anthropic {ANTHROPIC}", "anthropic sk-ant-api03-***"),
    ("legacy sk-Ab12Cd34Ef56Gh78Ij90", "legacy sk-***"),
    (f"gh {GITHUB}", "gh ghp_***"),
    (f"slack {SLACK}", "slack xoxb-***"),
    (f"aws {AWS} x", "aws AKIA*** x"),
    (f"jwt {JWT} end", "jwt *** end"),
    ("redis://user:pa55@w0rd@cache:6379/0", "redis://user:***@cache:6379/0"),
    ("rediss://:only-password@cache", "rediss://:***@cache"),
    ("postgres://app:s3cret@db/main", "postgres://app:***@db/main"),
    ("GET https://bob:hunter2@example.com/x ok", "GET https://bob:***@example.com/x ok"),
    (
        "/v1/models?key=abc123&alt=sse&api_key=zz&access_token=q1&X-Amz-Signature=ff#f",
        "/v1/models?key=***&alt=sse&api_key=***&access_token=***&X-Amz-Signature=***#f",
    ),
    ("login password='hunter2 x' ok", "login password=*** ok"),
    ("X-API-Key: abc-123-def sent", "X-API-Key: *** sent"),
    ("Cookie: sid=1; theme=dark", "Cookie: ***"),
    (
        """{"password": "pw\\"x", 'api_key': 'v1', "name": "bo"}""",
        """{"password": "***", 'api_key': '***', "name": "bo"}""",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), SHAPES)
def test_secret_shapes_are_masked_and_the_rest_of_the_string_kept(text: str, expected: str) -> None:
    assert masked({"event": text, "detail": text}) == {"event": expected, "detail": expected}


NOT_SECRETS = [
    "max_tokens=1024 input_tokens=12 total_tokens=40 token_count=3",
    "monkey=banana keyboard=us primary_key=7",
    "listening on http://127.0.0.1:8080/health",
    "the bearer of the news",
    "task-force desk-lamp sk-short",
    "AIza is a prefix, AKIA too",
    "ghp_short",
    "2025-01-02T03:04:05Z request done in 3.2 ms",
    "a secretary typed on the keyboard",
]


@pytest.mark.parametrize("text", NOT_SECRETS)
def test_innocent_text_is_left_alone(text: str) -> None:
    assert masked({"event": text})["event"] == text


def test_fields_the_kit_writes_are_never_masked() -> None:
    event = {
        "event": "request",
        "request_id": OPENAI,  # a client may choose any valid request id
        "path": "/flows/token=abc",
        "method": "POST",
        "status": 200,
        "route": "/tell-joke",
    }
    assert masked(event) == event


# Registered secrets.


def test_registered_secrets_are_masked_wherever_they_occur() -> None:
    event = {
        "event": f"calling with {SHAPELESS}!",
        "nested": [{"note": f"x{SHAPELESS}y"}],
        "raw": SHAPELESS.encode(),
    }
    out = masked(event, SHAPELESS, "abc")  # too short to register: would blank out words
    assert out == {"event": "calling with ***!", "nested": [{"note": "x***y"}], "raw": MASK}
    assert masked({"event": "abc"}, "abc")["event"] == "abc"


def test_overlapping_registered_secrets_are_masked_whole() -> None:
    longer = "plain-key-1234-extended"
    out = masked({"event": f"with {longer}."}, "plain-key-1234", longer)
    assert out["event"] == "with ***."


def test_api_key_lists_yield_the_plaintext_keys_only() -> None:
    digest = hashlib.sha256(b"hashed-key-000000").hexdigest()
    spec = SecretStr(f"ci:{SHAPELESS}, ops:sha256:{digest},odd:key:with:colons,")
    assert api_key_secrets(spec) == [SHAPELESS, "key:with:colons"]
    assert api_key_secrets(None) == []
    assert secret_values(SecretStr("a"), None, "b", SecretStr("")) == ["a", "b"]


# End to end through configure_logging.


def test_structlog_events_are_masked_in_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json", secrets=[SHAPELESS])
    structlog.get_logger("t").info(
        f"calling model with {GOOGLE}",
        request={"headers": {"Authorization": f"Bearer {SHAPELESS}"}, "max_tokens": 256},
        url="redis://u:pw-123456@cache:6379",
        usage={"input_tokens": 10, "total_tokens": 30},
    )
    err = capsys.readouterr().err
    for secret in (GOOGLE, SHAPELESS, "pw-123456"):
        assert secret not in err
    (event,) = lines(err)
    assert event["event"] == "calling model with AIza***"
    assert event["request"] == {"headers": {"Authorization": MASK}, "max_tokens": 256}
    assert event["url"] == "redis://u:***@cache:6379"
    assert event["usage"] == {"input_tokens": 10, "total_tokens": 30}


def test_stdlib_records_are_masked_message_and_extra_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", "json", secrets=[SHAPELESS])
    token = request_id_var.set("rid-7")
    try:
        logging.getLogger("httpx").info(
            "HTTP Request: POST %s %s",
            f"https://api.example/v1?key={SHAPELESS}",
            f"Bearer {OPENAI}",
            extra={"api_key": SHAPELESS, "max_tokens": 5},
        )
    finally:
        request_id_var.reset(token)
    err = capsys.readouterr().err
    assert SHAPELESS not in err
    assert OPENAI not in err
    (event,) = lines(err)
    assert event["event"] == "HTTP Request: POST https://api.example/v1?key=*** Bearer ***"
    assert (event["api_key"], event["max_tokens"], event["request_id"]) == (MASK, 5, "rid-7")


def _fail_with_secrets() -> None:
    config = {"api_key": SHAPELESS}
    raise ValueError(f"provider refused {GOOGLE} with {config!r}")


def test_exception_text_is_masked_for_structlog_and_stdlib(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", "json", secrets=[SHAPELESS])
    try:
        _fail_with_secrets()
    except ValueError:
        structlog.get_logger("t").exception("call_failed")
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    err = capsys.readouterr().err
    assert GOOGLE not in err
    assert SHAPELESS not in err
    ours, theirs = lines(err)
    for event in (ours, theirs):
        assert "Traceback" in event["exception"]
        assert "provider refused AIza*** with {'api_key': '***'}" in event["exception"]


def test_console_tracebacks_are_masked_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "console", secrets=[SHAPELESS])
    try:
        _fail_with_secrets()
    except ValueError:
        structlog.get_logger("t").exception("call_failed", token=SHAPELESS)
    err = capsys.readouterr().err
    assert "provider refused AIza***" in err
    assert GOOGLE not in err
    assert SHAPELESS not in err


def test_the_app_registers_its_api_keys_and_provider_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    digest = hashlib.sha256(b"hashed-key-000000").hexdigest()
    monkeypatch.setenv("API_KEYS", f"ci:{SHAPELESS},ops:sha256:{digest}")
    monkeypatch.setenv("OPENAI_API_KEY", "shapeless-openai-key-777")
    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.setenv("LOG_LEVEL", "info")
    setup_logging(load_settings())
    structlog.get_logger("t").info(f"seen {SHAPELESS} and shapeless-openai-key-777")
    err = capsys.readouterr().err
    assert lines(err)[-1]["event"] == "seen *** and ***"
