# SPDX-License-Identifier: Apache-2.0
"""The Gemini REST wire under ``/v1beta``: request classification and every body the fake sends.

Builds what `genkit_google_genai` expects from the real API: the paginated model listing,
`generateContent` bodies, `streamGenerateContent?alt=sse` frames, and errors in Google's
shape (`google.rpc` status names, `RetryInfo` details). Bodies are plain dicts and frames
raw SSE bytes; sending them is the exchange's job.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from tests.fakes.provider.script import Kind, RecordedRequest, Reply, usage

PREFIX = "/v1beta/"
_MODEL_PATH = re.compile(r"^/v1beta/models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$")
# google.rpc.Code names, as Google puts them in `error.status`.
_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def classify(
    method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: Any
) -> RecordedRequest:
    """Record a request under `PREFIX`: a model listing, a generation, or anything else."""
    kind: Kind = "other"
    model: str | None = None
    streaming = json_mode = False
    match = _MODEL_PATH.match(path)
    if method == "GET" and path == "/v1beta/models":
        kind = "list"
    elif (
        method == "POST"
        and match
        and match["method"] in ("generateContent", "streamGenerateContent")
    ):
        kind, model = "generate", match["model"]
        # Only the SSE framing is faked; the SDK always asks for it.
        streaming = match["method"] == "streamGenerateContent" and query.get("alt") == "sse"
        gen = (body or {}).get("generationConfig") or {}
        json_mode = gen.get("responseMimeType") == "application/json" or any(
            k in gen for k in ("responseSchema", "responseJsonSchema")
        )
    return RecordedRequest(
        method, path, query, headers, body, "gemini", kind, model, streaming, json_mode
    )


def error_body(code: int, text: str, retry_after: float | str | None) -> dict[str, Any]:
    """Google's error shape; a numeric `retry_after` also rides along as `RetryInfo`."""
    error: dict[str, Any] = {
        "code": code,
        "message": text,
        "status": _GOOGLE_STATUS.get(code, "INTERNAL" if code >= 500 else "UNKNOWN"),
    }
    if retry_after is not None and not isinstance(retry_after, str):
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": f"{retry_after}s",
            }
        ]
    return {"error": error}


def listing(models: Sequence[str], query: Mapping[str, str], page_size: int) -> dict[str, Any]:
    """One page of `GET /v1beta/models`; `pageToken` is the offset of the page."""
    size = int(query.get("pageSize") or page_size)
    start = int(query.get("pageToken") or 0)
    page = models[start : start + size]
    body: dict[str, Any] = {"models": [_model(m) for m in page]}
    if start + size < len(models):
        body["nextPageToken"] = str(start + size)
    return body


def unary_body(reply: Reply, request: RecordedRequest, n: int) -> dict[str, Any]:
    """The `generateContent` response for `reply`; `n` numbers the response id."""
    parts = ([{"text": reply.text}] if reply.text else []) + _calls(reply)
    return _chunk(parts, request, n, reply.finish_reason or "STOP", usage(reply, request))


def stream_frames(reply: Reply, request: RecordedRequest, n: int) -> list[bytes]:
    """The SSE events of `streamGenerateContent` for `reply`, one per text piece."""
    events = [[{"text": piece}] for piece in reply.pieces()]
    if reply.all_tool_calls:
        events.append(_calls(reply))
    events = events or [[{"text": ""}]]
    last = len(events) - 1
    # finishReason and usage ride on the last chunk only, as on the real API.
    chunks = [
        _chunk(parts, request, n, None, None)
        if i < last
        else _chunk(parts, request, n, reply.finish_reason or "STOP", usage(reply, request))
        for i, parts in enumerate(events)
    ]
    # `\r\n\r\n` is what Google sends; the SDK splits events on blank lines either way.
    return [b"data: %s\r\n\r\n" % json.dumps(c).encode() for c in chunks]


def _model(name: str) -> dict[str, Any]:
    methods = ["embedContent"] if "embed" in name else ["generateContent", "countTokens"]
    return {
        "name": f"models/{name}",
        "version": "001",
        "displayName": name,
        "description": "Served by the fake provider.",
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": methods,
    }


def _chunk(
    parts: list[dict[str, Any]],
    request: RecordedRequest,
    n: int,
    finish: str | None,
    tokens: tuple[int, int] | None,
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    chunk: dict[str, Any] = {
        "candidates": [candidate],
        "modelVersion": request.model,
        "responseId": f"fake-{n}",
    }
    if tokens:
        prompt, output = tokens
        chunk["usageMetadata"] = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": output,
            "totalTokenCount": prompt + output,
        }
    return chunk


def _calls(reply: Reply) -> list[dict[str, Any]]:
    calls = []
    for call in reply.all_tool_calls:
        fn: dict[str, Any] = {"name": call.name, "args": dict(call.args)}
        if call.id:
            fn["id"] = call.id
        calls.append({"functionCall": fn})
    return calls
