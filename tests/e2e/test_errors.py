# SPDX-License-Identifier: Apache-2.0
"""The client-facing errors the foundation can produce, over real sockets."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.server import ServerProcess

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "request_id"}


def assert_problem(r: httpx.Response, status: int, instance: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert PROBLEM_KEYS <= set(body) <= PROBLEM_KEYS | {"errors"}
    assert body["status"] == status
    assert body["instance"] == instance
    assert body["request_id"] == r.headers["x-request-id"]
    assert body["type"].startswith("urn:genkit-endpoints:problem:")
    text = r.text
    for leak in ("Traceback", 'File "', "ValidationError", "Exception", "site-packages"):
        assert leak not in text
    return body


@pytest.mark.parametrize(
    ("body", "field", "kind"),
    [
        ({"name": "x" * 201}, "name", "string_too_long"),
        ({"name": 5}, "name", "string_type"),
        ({"name": ["a"]}, "name", "string_type"),
    ],
)
def test_schema_violation_is_422_with_field_errors(
    offline_server: ServerProcess, body: dict[str, Any], field: str, kind: str
) -> None:
    with offline_server.client() as c:
        r = c.post("/tell-joke", json=body)
    problem = assert_problem(r, 422, "/tell-joke")
    assert problem["errors"] == [
        {"field": field, "message": problem["errors"][0]["message"], "type": kind}
    ]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/translate", {"text": ""}, "text"),
        ("/translate", {"text": "a" * 10_001}, "text"),
        ("/translate", {"target_language": "x" * 101}, "target_language"),
        ("/describe-image", {"image_url": "ftp://example.com/a.png"}, "image_url"),
        ("/describe-image", {"image_url": "https://e.com/" + "a" * 2048}, "image_url"),
        ("/generate-character", {"name": ""}, "name"),
        ("/chat", {"question": "q" * 5001}, "question"),
        ("/tell-story/stream", {"topic": "t" * 1001}, "topic"),
        ("/generate-code", {"language": "py thon"}, "language"),
        ("/generate-code", {"description": ""}, "description"),
        ("/review-code", {"code": ""}, "code"),
        ("/review-code", {"language": "x" * 51}, "language"),
    ],
)
def test_every_input_constraint_is_enforced(
    offline_server: ServerProcess, path: str, body: dict[str, Any], field: str
) -> None:
    with offline_server.client() as c:
        r = c.post(path, json=body)
    problem = assert_problem(r, 422, path)
    assert [e["field"] for e in problem["errors"]] == [field]


@pytest.mark.parametrize("raw", [b'{"name": ', b"{'name': 1}", b"\xff\xfe", b"nul\x00"])
def test_malformed_json_is_422(offline_server: ServerProcess, raw: bytes) -> None:
    with offline_server.client() as c:
        r = c.post("/tell-joke", content=raw, headers={"content-type": "application/json"})
    problem = assert_problem(r, 422, "/tell-joke")
    assert problem["errors"][0]["type"] == "json_invalid"


@pytest.mark.parametrize("raw", [b"[]", b'"text"', b"42", b"null"])
def test_json_that_is_not_an_object_is_422(offline_server: ServerProcess, raw: bytes) -> None:
    with offline_server.client() as c:
        r = c.post("/tell-joke", content=raw, headers={"content-type": "application/json"})
    assert_problem(r, 422, "/tell-joke")


def test_deeply_nested_json_is_422_not_500(offline_server: ServerProcess) -> None:
    raw = b'{"name": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    with offline_server.client() as c:
        r = c.post("/tell-joke", content=raw, headers={"content-type": "application/json"})
    assert_problem(r, 422, "/tell-joke")


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
def test_non_json_body_is_415(offline_server: ServerProcess, ctype: str | None) -> None:
    headers = {"content-type": ctype} if ctype else {}
    with offline_server.client() as c:
        r = c.post("/translate", content=b"name=1", headers=headers)
    assert_problem(r, 415, "/translate")


def test_json_with_charset_and_vendor_types_are_accepted(offline_server: ServerProcess) -> None:
    with offline_server.client() as c:
        a = c.post(
            "/tell-joke", content=b"{}", headers={"content-type": "application/json; charset=utf-8"}
        )
        b = c.post(
            "/tell-joke", content=b"{}", headers={"content-type": "application/vnd.api+json"}
        )
    assert a.status_code == b.status_code == 200


@pytest.mark.parametrize("path", ["/nope", "/tell-joke/", "/flows", "/flows/unknown_flow"])
def test_unknown_route_is_404(offline_server: ServerProcess, path: str) -> None:
    with offline_server.client() as c:
        r = c.post(path, json={})
    assert_problem(r, 404, path)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("GET", "/tell-joke", "POST"), ("DELETE", "/translate", "POST"), ("POST", "/health", "GET")],
)
def test_wrong_method_is_405_with_allow(
    offline_server: ServerProcess, method: str, path: str, allow: str
) -> None:
    with offline_server.client() as c:
        r = c.request(method, path)
    assert_problem(r, 405, path)
    assert r.headers["allow"] == allow


def test_callable_protocol_errors_use_the_same_statuses(offline_server: ServerProcess) -> None:
    with offline_server.client() as c:
        bad_json = c.post(
            "/flows/tell_joke", content=b"{", headers={"content-type": "application/json"}
        )
        not_obj = c.post("/flows/tell_joke", json=[1])
        wrong_type = c.post(
            "/flows/tell_joke", content=b"x", headers={"content-type": "text/plain"}
        )
    assert_problem(bad_json, 422, "/flows/tell_joke")
    assert_problem(not_obj, 422, "/flows/tell_joke")
    assert_problem(wrong_type, 415, "/flows/tell_joke")


def test_client_request_id_is_used_in_the_problem(offline_server: ServerProcess) -> None:
    with offline_server.client() as c:
        r = c.post("/nope", headers={"x-request-id": "trace-me.42"})
    assert r.headers["x-request-id"] == "trace-me.42"
    assert r.json()["request_id"] == "trace-me.42"
