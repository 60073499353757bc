# SPDX-License-Identifier: Apache-2.0
"""The OpenAPI document of the REST contract, derived from the route table.

Adapters answer with bytes from ``genkit_endpoints.http.handlers``, so a framework's own generator
cannot know what a route returns: FastAPI documented ``{}`` for every 200 and none of the
errors the handlers and the middleware really send. This document is built from the same
route table as the routes, so it cannot drift from them, and it lists every response an
operation can give: the output schema (or the Server-Sent Events of a stream), and each
RFC 9457 problem with its status, the ``X-Request-ID`` on every response, and the
headers that go with 401, 429 and 503. A schemathesis run holds it to that.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from genkit_endpoints.core.errors import PROBLEM_CONTENT_TYPE
from genkit_endpoints.core.routes import FlowRoute, RouteTable

__all__ = ["openapi_document"]

_SCHEMAS = "#/components/schemas/"
_JSON = "application/json"
_SSE = "text/event-stream"
_ANY: dict[str, Any] = {}  # any JSON value

# API keys are optional: documented always, because the framework app does not know
# whether the service has keys; `{}` in `security` says a deployment may need none.
_SECURITY: list[dict[str, list[str]]] = [{}, {"ApiKeyHeader": []}, {"BearerAuth": []}]
_SECURITY_SCHEMES = {
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                     "description": "Only when the service is configured with API keys."},
    "BearerAuth": {"type": "http", "scheme": "bearer",
                   "description": "The same API key, as `Authorization: Bearer <key>`."},
}  # fmt: skip

_FIELD_ERROR = {
    "type": "object",
    "required": ["field", "message", "type"],
    "properties": {"field": {"type": "string"}, "message": {"type": "string"},
                   "type": {"type": "string"}},
}  # fmt: skip
_PROBLEM = {
    "type": "object",
    "description": "An RFC 9457 problem; the same body on every framework.",
    "required": ["type", "title", "status", "detail", "instance", "request_id"],
    "properties": {
        "type": {"type": "string", "pattern": "^urn:genkit-endpoints:problem:[a-z0-9-]+$"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "A sentence for the client."},
        "instance": {"type": "string", "description": "The request path."},
        "request_id": {"type": ["string", "null"]},
        "errors": {"type": "array", "items": {"$ref": _SCHEMAS + "FieldError"},
                   "description": "Field problems of an invalid body."},
    },
}  # fmt: skip
_KIT_SCHEMAS = {
    "Problem": _PROBLEM,
    "FieldError": _FIELD_ERROR,
    "Health": {"type": "object", "required": ["status"],
               "properties": {"status": {"const": "ok"}}},
    "Readiness": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"enum": ["ok", "unavailable"]},
            "checks": {"type": "object",
                       "additionalProperties": {"enum": ["ok", "failing", "draining"]}},
        },
    },
}  # fmt: skip

_ID_PATTERN = {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"}
_REQUEST_ID = {
    "description": "The request id: the client's, when well-formed, else a new one.",
    "required": True,
    "schema": _ID_PATTERN,
}
_REQUEST_ID_PARAMETER = {
    "name": "X-Request-ID", "in": "header", "required": False, "schema": _ID_PATTERN,
    "description": "Echoed when well-formed; any other value is replaced by a new id.",
}  # fmt: skip
_PARAMETERS = [{"$ref": "#/components/parameters/RequestId"}]
_RETRY_AFTER = {"description": "Seconds to wait before retrying.", "required": False,
                "schema": {"type": "string", "pattern": "^[0-9]+$"}}  # fmt: skip
_HEADERS = {  # components, by name; a response maps header names to these
    "RequestId": _REQUEST_ID,
    "RetryAfter": _RETRY_AFTER,
    "RetryAfterAlways": {**_RETRY_AFTER, "required": True},  # every 429 says when to retry
    "WwwAuthenticate": {"description": "How to authenticate.", "required": True,
                        "schema": {"type": "string", "pattern": "^Bearer "}},
}  # fmt: skip

# status: (component name, description, extra headers)
_PROBLEMS: dict[int, tuple[str, str, tuple[tuple[str, str], ...]]] = {
    400: ("BadRequest", "The Host header is malformed or not in TRUSTED_HOSTS.", ()),
    401: ("Unauthenticated", "With API keys configured: the key is missing, not valid, or "
          "sent in the URL.", (("WWW-Authenticate", "WwwAuthenticate"),)),
    404: ("NotFound", "There is no flow with that name.", ()),
    408: ("RequestTimeout", "The request body arrived too slowly (BODY_READ_TIMEOUT, "
          "BODY_MIN_RATE); the connection is closed.", ()),
    413: ("ContentTooLarge", "The request body is larger than MAX_BODY_SIZE.", ()),
    415: ("UnsupportedMediaType", "A non-empty body that is not JSON (application/json or "
          "application/*+json).", ()),
    422: ("UnprocessableContent", "Malformed or too deeply nested JSON, a field problem "
          "(listed in `errors`), or input the flow refused (e.g. an image URL it cannot "
          "use).", ()),
    429: ("TooManyRequests", "Rate limited.", (("Retry-After", "RetryAfterAlways"),)),
    500: ("InternalError", "An unexpected failure; the detail is generic on purpose.", ()),
    502: ("BadGateway", "The model provider failed, or its output did not match the "
          "output schema.", ()),
    503: ("ServiceUnavailable", "Overloaded, the circuit breaker is open, or the service "
          "is shutting down.", (("Retry-After", "RetryAfter"),)),
    504: ("GatewayTimeout", "The request or the model call took too long.", ()),
}  # fmt: skip
_FLOW_ERRORS = (400, 401, 408, 413, 415, 422, 429, 500, 502, 503, 504)
_CALLABLE_ERRORS = (*_FLOW_ERRORS, 404)
_PROBE_ERRORS = (400, 500)  # GET: no body to limit; probes need no key, take no slot
_KIT_OPERATIONS = ("liveness", "readiness", "genkit_callable")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _SCHEMAS + name}


def _headers(*pairs: tuple[str, str]) -> dict[str, Any]:
    names = (("X-Request-ID", "RequestId"), *pairs)
    return {name: {"$ref": f"#/components/headers/{key}"} for name, key in names}


def _problem_response(status: int) -> dict[str, Any]:
    _, description, headers = _PROBLEMS[status]
    schema = {"allOf": [_ref("Problem"), {"properties": {"status": {"const": status}}}]}
    return {"description": description, "headers": _headers(*headers),
            "content": {PROBLEM_CONTENT_TYPE: {"schema": schema}}}  # fmt: skip


def _json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "headers": _headers(),
            "content": {_JSON: {"schema": schema}}}  # fmt: skip


def _frame(properties: dict[str, Any]) -> dict[str, Any]:
    """The JSON in one ``data:`` line: exactly these members."""
    return {"type": "object", "required": list(properties), "properties": properties,
            "additionalProperties": False}  # fmt: skip


def _event(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """One parsed SSE event; its ``data`` is JSON matching ``data``."""
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"const": name},
            "data": {"type": "string", "contentMediaType": _JSON, "contentSchema": data},
        },
    }


def _sse_response(description: str, event: dict[str, Any]) -> dict[str, Any]:
    # For OpenAPI < 3.2 an event-stream `schema` describes each event (as schemathesis
    # reads it); 3.2 names that `itemSchema`.
    return {"description": description, "headers": _headers(),
            "content": {_SSE: {"schema": event}}}  # fmt: skip


def _responses(statuses: tuple[int, ...], **ok: dict[str, Any]) -> dict[str, Any]:
    responses = {str(code): response for code, response in ok.items()}
    for status in sorted(statuses):
        responses[str(status)] = {"$ref": f"#/components/responses/{_PROBLEMS[status][0]}"}
    return responses


class _Models:
    """JSON schemas of the app's models, hoisted into ``components`` (no local ``$defs``)."""

    def __init__(self, table: RouteTable) -> None:
        keys: list[tuple[type[BaseModel], JsonSchemaMode]] = []
        for route in table:
            keys.append((route.input_model, "validation"))
            if route.output_model is not None:
                keys.append((route.output_model, "serialization"))
        refs, defs = models_json_schema(keys, ref_template=_SCHEMAS + "{model}")
        self.refs = refs
        self.schemas: dict[str, Any] = defs.get("$defs", {})
        clash = sorted(set(self.schemas) & set(_KIT_SCHEMAS))
        if clash:
            raise ValueError(f"model names {clash} are reserved by the OpenAPI document")

    def input(self, route: FlowRoute) -> dict[str, Any]:
        # Inline, as before this module existed: the docs UI shows the body's fields at once.
        name = self.refs[(route.input_model, "validation")]["$ref"].removeprefix(_SCHEMAS)
        return dict(self.schemas[name])

    def output(self, route: FlowRoute) -> dict[str, Any]:
        if route.output_model is not None:
            return self.refs[(route.output_model, "serialization")]
        # A stream's final value: the flow's own output schema when it is self-contained.
        schema = route.flow.output_schema
        flat = isinstance(schema, dict) and "$ref" not in str(schema)
        return dict(schema) if flat else _ANY


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    # Optional: an empty body means `{}`, every input field has a default.
    return {"required": False, "content": {_JSON: {"schema": schema}}}


def _flow_operation(route: FlowRoute, models: _Models) -> dict[str, Any]:
    output = models.output(route)
    if route.streaming:
        key = route.stream_key or "result"
        done = _frame({"done": {"const": True}, key: output})
        frames = {"oneOf": [_frame({"chunk": _ANY}), done]}
        event = {"oneOf": [_event("message", frames), _event("error", _ref("Problem"))]}
        ok = _sse_response(
            "`chunk` frames, then `done`; a failure after the start ends the stream with one "
            "`event: error` problem.",
            event,
        )
    else:
        ok = _json_response("The flow's output.", output)
    return {
        "tags": ["flows"],
        "operationId": route.name,
        "summary": route.summary or route.name,
        "description": route.flow.description or "",
        "security": _SECURITY,
        "parameters": _PARAMETERS,
        "requestBody": _body(models.input(route)),
        "responses": _responses(_FLOW_ERRORS, **{"200": ok}),
    }


def _callable_operation(table: RouteTable, models: _Models) -> dict[str, Any]:
    names = [route.name for route in table]
    inputs = [models.input(route) for route in table]
    outputs = {"anyOf": [models.output(route) for route in table]}
    error = _frame({"status": {"type": "string"}, "message": {"type": "string"}})
    frames = [_frame({"message": _ANY}), _frame({"result": outputs}), _frame({"error": error})]
    stream = _sse_response("With `Accept: text/event-stream` or `?stream=true`: `message` "
                           "frames, then `result` or `error`.",
                           _event("message", {"oneOf": frames}))  # fmt: skip
    ok = _json_response('`{"result": output}`', _frame({"result": outputs}))
    ok["content"].update(stream["content"])
    envelope = {"type": "object", "properties": {"data": {"anyOf": [{"type": "null"}, *inputs]}}}
    return {
        "tags": ["genkit callable"],
        "operationId": "genkit_callable",
        "summary": "Call a flow with the Genkit callable protocol",
        "description": "`{\"data\": input}` in, `{\"result\": output}` out.",
        "security": _SECURITY,
        "parameters": [
            *_PARAMETERS,
            {"name": "flow_name", "in": "path", "required": True,
             "schema": {"type": "string", "enum": names}},
            {"name": "stream", "in": "query", "required": False, "schema": {"type": "boolean"},
             "description": "`true` or `1` streams, like `Accept: text/event-stream`."},
        ],
        "requestBody": _body(envelope),
        "responses": _responses(_CALLABLE_ERRORS, **{"200": ok}),
    }  # fmt: skip


def _readiness(status: str) -> dict[str, Any]:
    return {"allOf": [_ref("Readiness"), {"properties": {"status": {"const": status}}}]}


def _probe(operation_id: str, summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    return {"tags": ["probes"], "operationId": operation_id, "summary": summary,
            "security": [], "parameters": _PARAMETERS,
            "responses": _responses(_PROBE_ERRORS, **responses)}  # fmt: skip


def openapi_document(table: RouteTable, *, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of everything the REST adapters serve for ``table``."""
    models = _Models(table)
    taken = sorted({route.name for route in table} & set(_KIT_OPERATIONS))
    if taken:
        raise ValueError(f"flow names {taken} are reserved operation ids of the OpenAPI document")
    paths: dict[str, Any] = {
        "/health": {"get": _probe("liveness", "Liveness: the process answers", {
            "200": _json_response("Alive; never touches a model.", _ref("Health"))})},
        "/ready": {"get": _probe("readiness", "Readiness: ready to serve flows", {
            "200": _json_response("Ready.", _readiness("ok")),
            "503": _json_response("Not ready (warming up, a check failing, or draining).",
                                  _readiness("unavailable")),
        })},
    }  # fmt: skip
    for route in table:
        paths[route.path] = {"post": _flow_operation(route, models)}
    paths["/flows/{flow_name}"] = {"post": _callable_operation(table, models)}
    responses = {name: _problem_response(status) for status, (name, _, _) in _PROBLEMS.items()}
    document = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": {**models.schemas, **_KIT_SCHEMAS},
            "responses": responses,
            "parameters": {"RequestId": _REQUEST_ID_PARAMETER},
            "headers": _HEADERS,
            "securitySchemes": _SECURITY_SCHEMES,
        },
    }
    return copy.deepcopy(document)  # no constant of this module shared with a caller
