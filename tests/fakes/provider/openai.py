# SPDX-License-Identifier: Apache-2.0
"""The OpenAI chat-completions wire under ``/v1``: request classification and every body sent.

Builds what `genkit_openai` (through the `openai` SDK) expects from the real API: the model
listing, `chat.completion` bodies, `chat.completion.chunk` SSE frames ending in `[DONE]`,
and errors in OpenAI's shape (`type` and `code`). Bodies are plain dicts and frames raw SSE
bytes; sending them is the exchange's job.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from tests.fakes.provider.script import Kind, RecordedRequest, Reply, usage

PREFIX = "/v1/"
_ERROR = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def classify(
    method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: Any
) -> RecordedRequest:
    """Record a request under `PREFIX`: a model listing, a generation, or anything else."""
    kind: Kind = "other"
    model: str | None = None
    streaming = json_mode = False
    if method == "GET" and path == "/v1/models":
        kind = "list"
    elif method == "POST" and path == "/v1/chat/completions" and isinstance(body, dict):
        kind, model = "generate", body.get("model")
        streaming = body.get("stream") is True
        fmt = body.get("response_format") or {}
        json_mode = fmt.get("type") in ("json_object", "json_schema")
    return RecordedRequest(
        method, path, query, headers, body, "openai", kind, model, streaming, json_mode
    )


def error_body(code: int, text: str) -> dict[str, Any]:
    """OpenAI's error shape; statuses without a specific type map to server or request errors."""
    kind, err_code = _ERROR.get(
        code, ("server_error" if code >= 500 else "invalid_request_error", None)
    )
    return {"error": {"message": text, "type": kind, "param": None, "code": err_code}}


def listing(models: Sequence[str]) -> dict[str, Any]:
    """`GET /v1/models`: every model in one page, as OpenAI lists them."""
    return {
        "object": "list",
        "data": [
            {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "fake"}
            for m in models
        ],
    }


def unary_body(reply: Reply, request: RecordedRequest, n: int) -> dict[str, Any]:
    """The `chat.completion` response for `reply`; `n` numbers the completion and call ids."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": None}
    if reply.all_tool_calls:
        message["tool_calls"] = _calls(reply, n)
    return {
        "id": f"chatcmpl-fake-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _finish(reply),
                "logprobs": None,
            }
        ],
        "usage": _usage(usage(reply, request)),
    }


def stream_frames(reply: Reply, request: RecordedRequest, n: int) -> list[bytes]:
    """The SSE events of a `stream: true` completion: a role-only opener, then the reply."""
    base: dict[str, Any] = {"id": f"chatcmpl-fake-{n}", "object": "chat.completion.chunk"}
    base |= {"created": int(time.time()), "model": request.model}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return {**base, "choices": [choice]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": piece}) for piece in reply.pieces()]
    for i, call in enumerate(_calls(reply, n)):
        name, args = call["function"]["name"], call["function"]["arguments"]
        half = len(args) // 2
        # Arguments arrive in fragments on the real API; split them so accumulation is exercised.
        opener: dict[str, Any] = {"index": i, "id": call["id"], "type": "function"}
        opener["function"] = {"name": name, "arguments": args[:half]}
        chunks.append(chunk({"tool_calls": [opener]}))
        chunks.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": args[half:]}}]}))
    chunks.append(chunk({}, _finish(reply)))
    if ((request.body or {}).get("stream_options") or {}).get("include_usage"):
        chunks.append({**base, "choices": [], "usage": _usage(usage(reply, request))})
    return [b"data: %s\n\n" % json.dumps(c).encode() for c in chunks] + [b"data: [DONE]\n\n"]


def _calls(reply: Reply, n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": call.id or f"call_fake_{n}_{i}",
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(dict(call.args))},
        }
        for i, call in enumerate(reply.all_tool_calls)
    ]


def _finish(reply: Reply) -> str:
    return reply.finish_reason or ("tool_calls" if reply.all_tool_calls else "stop")


def _usage(tokens: tuple[int, int]) -> dict[str, int]:
    prompt, output = tokens
    return {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output}
